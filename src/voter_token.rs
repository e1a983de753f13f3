//! Anonymous voter tokens: random bearer secrets of which only a hash is stored.
//!
//! A token is `tbv2_`, a time-ordered UUIDv7 in hex, then the secret. The stored key is that
//! UUID followed by the SHA-256 of the whole token, so the unique index on it grows at its
//! right edge like every other index a submission writes. Keyed by the hash alone (`tbv1_`
//! tokens, still accepted), each new voter went onto a random page of that index: as the
//! voters grew past a few hundred thousand, every batch of submissions dirtied one more page
//! per new voter, each written to the WAL and copied again by the next checkpoint, and the
//! writes' p99 on SQLite grew with the table (README, Benchmarks).

use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

const PREFIX: &str = "tbv2_";
/// The first tokens' prefix: no time-ordered part, the key is the hash alone.
const PREFIX_V1: &str = "tbv1_";
/// 256 bits of randomness, well over the 128 the threat model needs.
const RANDOM_BYTES: usize = 32;
/// The hex of a UUID, the time-ordered start of a `tbv2_` token.
const ORDERED_HEX: usize = 32;

/// A token as it came from a client, with a well-formed shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterToken(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the voter token is malformed")]
pub struct MalformedToken;

impl VoterToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; RANDOM_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        VoterToken(format!(
            "{PREFIX}{}{}",
            Uuid::now_v7().simple(),
            hex::encode(bytes)
        ))
    }

    pub fn parse(text: &str) -> Result<Self, MalformedToken> {
        let hex_of = |body: &str, len: usize| {
            body.len() == len
                && body
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let well_formed = match (text.strip_prefix(PREFIX), text.strip_prefix(PREFIX_V1)) {
            (Some(body), _) => hex_of(body, ORDERED_HEX + RANDOM_BYTES * 2),
            (_, Some(body)) => hex_of(body, RANDOM_BYTES * 2),
            _ => false,
        };
        if well_formed {
            Ok(VoterToken(text.to_owned()))
        } else {
            Err(MalformedToken)
        }
    }

    /// What the database keeps and looks the voter up by: a leaked table reveals no usable
    /// token (the time-ordered part of a `tbv2_` token is kept in clear, the secret is not).
    pub fn hash(&self) -> String {
        let digest = hex::encode(Sha256::digest(self.0.as_bytes()));
        match self.0.strip_prefix(PREFIX) {
            Some(body) => format!("{}{digest}", &body[..ORDERED_HEX]),
            None => digest,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = VoterToken::generate();
        let b = VoterToken::generate();
        assert_ne!(a, b);
        assert_eq!(VoterToken::parse(a.as_str()), Ok(a.clone()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), ORDERED_HEX + 64);
    }

    #[test]
    fn later_tokens_have_greater_keys_which_hold_no_secret() {
        let tokens: Vec<VoterToken> = (0..200).map(|_| VoterToken::generate()).collect();
        let keys: Vec<String> = tokens.iter().map(VoterToken::hash).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for (token, key) in tokens.iter().zip(&keys) {
            let secret = &token.as_str()[PREFIX.len() + ORDERED_HEX..];
            assert_eq!(secret.len(), RANDOM_BYTES * 2);
            assert!(!key.contains(secret), "{key} holds {secret}");
            assert!(key.ends_with(&hex::encode(Sha256::digest(token.as_str()))));
        }
    }

    #[test]
    fn first_tokens_still_parse_and_keep_their_key() {
        let v1 = format!("{PREFIX_V1}{}", "ab".repeat(32));
        let token = VoterToken::parse(&v1).expect("a tbv1_ token");
        assert_eq!(token.hash(), hex::encode(Sha256::digest(v1.as_bytes())));
    }

    #[test]
    fn refuses_malformed_tokens() {
        assert_eq!(VoterToken::parse("abc"), Err(MalformedToken));
        for bad in [
            format!("{PREFIX}{}", "g".repeat(96)),
            format!("{PREFIX}{}", "a".repeat(95)),
            format!("{PREFIX}{}", "A".repeat(96)),
            // A first-format body under the new prefix, and the other way round.
            format!("{PREFIX}{}", "a".repeat(64)),
            format!("{PREFIX_V1}{}", "a".repeat(96)),
            format!("{PREFIX_V1}{}", "a".repeat(63)),
            format!("tbv3_{}", "a".repeat(96)),
        ] {
            assert_eq!(VoterToken::parse(&bad), Err(MalformedToken), "{bad}");
        }
    }
}
