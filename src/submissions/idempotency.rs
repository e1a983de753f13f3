//! Idempotency keys: what the store keeps of a key and of the request it was first sent with.
//!
//! - The key itself is never stored, only its SHA-256 ([`IdempotencyKey::lookup_hash`]), which
//!   is what replays are found by.
//! - The payload a key is bound to is a SHA-256 over the validated allocation
//!   ([`payload_hash`]); the same key with another payload is refused.
//! - The voter token a keyed anonymous call created is kept sealed under the key
//!   ([`IdempotencyKey::seal`]), so that a replay returns it again. Only the key's holder can
//!   open it: the sealing key comes from the idempotency key, which the database does not hold.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{CategoryId, Hundredths};
use crate::voter_token::VoterToken;

/// Longest idempotency key accepted; a UUID or ULID fits many times over.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// Random per sealed token: every token is sealed under a key of its own, even under one
/// idempotency key (one key may create a voter in the anonymous scope and be reused by voters).
const SALT_BYTES: usize = 16;
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
/// Names what the derived bytes are for, so they can never serve another purpose.
const SEAL_INFO: &[u8] = b"tax-budget voterToken seal v1";

/// An idempotency key as the client sent it, of an accepted length. Never stored or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters")]
pub struct BadIdempotencyKey;

/// A voter token that cannot be sealed, or a sealed one that does not open: the stored data is
/// broken (the lookup matched the key's hash, so the key itself is right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Only for inputs far beyond a token's size; never expected.
    #[error("the voter token could not be sealed")]
    Sealing,
    #[error("a sealed voter token is not hex of salt and ciphertext")]
    Malformed,
    #[error("a sealed voter token does not open under its idempotency key")]
    Unopenable,
    #[error("a sealed voter token opened to something that is no voter token")]
    NotAToken,
}

impl std::fmt::Debug for IdempotencyKey {
    /// The key opens the sealed token: keep it out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyKey(..)")
    }
}

impl IdempotencyKey {
    pub fn parse(key: String) -> Result<Self, BadIdempotencyKey> {
        if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(BadIdempotencyKey);
        }
        Ok(IdempotencyKey(key))
    }

    /// What the database keeps and replays are found by: hex SHA-256 of the key's UTF-8
    /// bytes (the migration that introduced it hashed the keys stored before the same way).
    pub fn lookup_hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// Seals `token` for `voter`: hex of a random salt followed by the ChaCha20-Poly1305
    /// ciphertext of the token. The key and nonce come from HKDF-SHA256 of the idempotency key
    /// under that salt; a fresh salt makes a fresh key, used once, so the derived nonce never
    /// repeats under a key. The voter id is the associated data: a sealed token copied onto
    /// another voter's row does not open.
    pub fn seal(&self, token: &VoterToken, voter: Uuid) -> Result<String, SealError> {
        let mut salt = [0u8; SALT_BYTES];
        rand::rng().fill_bytes(&mut salt);
        let (cipher, nonce) = self.cipher(&salt)?;
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: token.as_str().as_bytes(),
                    aad: voter.as_bytes(),
                },
            )
            .map_err(|_| SealError::Sealing)?;
        let mut out = salt.to_vec();
        out.extend_from_slice(&sealed);
        Ok(hex::encode(out))
    }

    /// The token [`Self::seal`] sealed for `voter` under this key.
    pub fn open(&self, sealed: &str, voter: Uuid) -> Result<VoterToken, SealError> {
        let bytes = hex::decode(sealed).map_err(|_| SealError::Malformed)?;
        if bytes.len() <= SALT_BYTES {
            return Err(SealError::Malformed);
        }
        let (salt, ciphertext) = bytes.split_at(SALT_BYTES);
        let (cipher, nonce) = self.cipher(salt)?;
        let plain = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: voter.as_bytes(),
                },
            )
            .map_err(|_| SealError::Unopenable)?;
        let text = String::from_utf8(plain).map_err(|_| SealError::NotAToken)?;
        VoterToken::parse(&text).map_err(|_| SealError::NotAToken)
    }

    fn cipher(&self, salt: &[u8]) -> Result<(ChaCha20Poly1305, Nonce), SealError> {
        let mut okm = [0u8; KEY_BYTES + NONCE_BYTES];
        Hkdf::<Sha256>::new(Some(salt), self.0.as_bytes())
            .expand(SEAL_INFO, &mut okm)
            // Only for an output over 255 hash lengths, which 44 bytes are not.
            .map_err(|_| SealError::Sealing)?;
        let (key, nonce) = okm.split_at(KEY_BYTES);
        Ok((
            ChaCha20Poly1305::new(Key::from_slice(key)),
            *Nonce::from_slice(nonce),
        ))
    }
}

/// The payload a key is bound to: hex SHA-256 over the (category id, hundredths) pairs in
/// category order, each as a 4-byte and a 2-byte big-endian integer. Computed from the
/// validated allocation, so the same split sent as `10` or `10.00`, or in another order,
/// is the same payload.
pub fn payload_hash(entries: &[(CategoryId, Hundredths)]) -> String {
    let mut sorted: Vec<(i32, u16)> = entries.iter().map(|(c, h)| (c.0, h.raw())).collect();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    for (category, hundredths) in sorted {
        hasher.update(category.to_be_bytes());
        hasher.update(hundredths.to_be_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text.to_owned()).expect("a valid key")
    }

    fn entries(pairs: &[(i32, i64)]) -> Vec<(CategoryId, Hundredths)> {
        pairs
            .iter()
            .map(|&(c, h)| (CategoryId(c), Hundredths::from_raw(h).expect("in range")))
            .collect()
    }

    #[test]
    fn keys_of_1_to_128_characters_are_accepted() {
        assert_eq!(IdempotencyKey::parse(String::new()), Err(BadIdempotencyKey));
        assert!(IdempotencyKey::parse("é".repeat(128)).is_ok());
        assert_eq!(
            IdempotencyKey::parse("k".repeat(129)),
            Err(BadIdempotencyKey)
        );
        assert_eq!(format!("{:?}", key("secret")), "IdempotencyKey(..)");
    }

    #[test]
    fn the_lookup_hash_is_sha256_hex_of_the_key() {
        // The PostgreSQL migration hashes stored keys with sha256(); this is its value for
        // 'abc' (FIPS 180-2's test vector).
        assert_eq!(
            key("abc").lookup_hash(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_sealed_token_opens_only_under_its_key_and_voter() {
        let token = VoterToken::generate();
        let voter = Uuid::new_v4();
        let sealed = key("k-1").seal(&token, voter).expect("seal");
        assert!(!sealed.contains(token.as_str()));
        assert!(!sealed.contains(&hex::encode(token.as_str())));
        assert_eq!(key("k-1").open(&sealed, voter), Ok(token.clone()));

        assert_eq!(key("k-2").open(&sealed, voter), Err(SealError::Unopenable));
        assert_eq!(
            key("k-1").open(&sealed, Uuid::new_v4()),
            Err(SealError::Unopenable)
        );
        // Salted: the same token under the same key seals differently each time.
        assert_ne!(key("k-1").seal(&token, voter).expect("seal"), sealed);

        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).expect("hex");
        assert_eq!(
            key("k-1").open(&tampered, voter),
            Err(SealError::Unopenable)
        );
        assert_eq!(key("k-1").open("zz", voter), Err(SealError::Malformed));
        assert_eq!(key("k-1").open("00", voter), Err(SealError::Malformed));
    }

    #[test]
    fn the_payload_hash_ignores_order_and_tells_splits_apart() {
        let a = payload_hash(&entries(&[(1, 5000), (2, 5000)]));
        assert_eq!(a, payload_hash(&entries(&[(2, 5000), (1, 5000)])));
        assert_ne!(a, payload_hash(&entries(&[(1, 5001), (2, 4999)])));
        assert_ne!(a, payload_hash(&entries(&[(1, 5000), (3, 5000)])));
        assert_eq!(a.len(), 64);
    }
}
