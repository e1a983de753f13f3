//! Anonymous voter tokens: random bearer secrets of which only a hash is stored.

use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "tbv1_";
/// 256 bits of randomness, well over the 128 the threat model needs.
const RANDOM_BYTES: usize = 32;

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
        VoterToken(format!("{PREFIX}{}", hex::encode(bytes)))
    }

    pub fn parse(text: &str) -> Result<Self, MalformedToken> {
        let body = text.strip_prefix(PREFIX).ok_or(MalformedToken)?;
        let well_formed = body.len() == RANDOM_BYTES * 2
            && body
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if well_formed {
            Ok(VoterToken(text.to_owned()))
        } else {
            Err(MalformedToken)
        }
    }

    /// What the database keeps: a leaked table reveals no usable token.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
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
        assert_eq!(a.hash().len(), 64);
    }

    #[test]
    fn refuses_malformed_tokens() {
        assert_eq!(VoterToken::parse("abc"), Err(MalformedToken));
        assert_eq!(
            VoterToken::parse(&format!("{PREFIX}{}", "g".repeat(64))),
            Err(MalformedToken)
        );
        assert_eq!(
            VoterToken::parse(&format!("{PREFIX}{}", "a".repeat(63))),
            Err(MalformedToken)
        );
    }
}
