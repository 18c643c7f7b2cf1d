//! Refresh tokens: 256 random bits, base64url, stored only as SHA-256.
//!
//! A rotated token's child is derived from it with HMAC (`child = HMAC(key, parent)`), so a parent
//! presented again within the grace window can be answered with the very same child while the
//! database holds nothing but hashes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of an encoded token: 32 bytes in unpadded base64url.
pub const ENCODED_LENGTH: usize = 43;

/// An opaque token in clear, as the client holds it (refresh tokens, emailed one-time tokens).
/// Never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(String);

pub type RefreshToken = OpaqueToken;

impl std::fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueToken([redacted])")
    }
}

pub type TokenHash = [u8; 32];

impl OpaqueToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        OpaqueToken(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only the shape authd issues, so junk never reaches the store.
    pub fn parse(presented: &str) -> Option<Self> {
        let presented = presented.trim();
        if presented.len() != ENCODED_LENGTH {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(presented).ok()?;
        (bytes.len() == 32).then(|| OpaqueToken(presented.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The token that replaces this one on rotation.
    pub fn child(&self, key: &[u8]) -> OpaqueToken {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
        mac.update(b"authd/refresh-rotation/v1\0");
        mac.update(self.0.as_bytes());
        OpaqueToken(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), ENCODED_LENGTH);
        assert_eq!(RefreshToken::parse(a.as_str()), Some(a));
    }

    #[test]
    fn junk_is_refused_before_any_lookup() {
        assert!(RefreshToken::parse("").is_none());
        assert!(RefreshToken::parse("not-a-token").is_none());
        assert!(RefreshToken::parse(&"*".repeat(ENCODED_LENGTH)).is_none());
    }

    #[test]
    fn child_is_deterministic_per_key_and_parent() {
        let parent = RefreshToken::generate();
        assert_eq!(parent.child(b"k1"), parent.child(b"k1"));
        assert_ne!(parent.child(b"k1"), parent.child(b"k2"));
        assert_ne!(parent.child(b"k1"), RefreshToken::generate().child(b"k1"));
        let child = parent.child(b"k1");
        assert_eq!(RefreshToken::parse(child.as_str()), Some(child.clone()));
        assert_ne!(child.child(b"k1"), child);
    }

    #[test]
    fn hash_is_sha256_of_the_encoded_token() {
        let t = RefreshToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(
            t.hash(),
            <[u8; 32]>::from(Sha256::digest(t.as_str().as_bytes()))
        );
        assert_ne!(t.hash(), RefreshToken::generate().hash());
    }
}
