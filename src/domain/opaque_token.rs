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

    /// The hash under which a token meant for one holder only is stored: presented by anyone
    /// else it matches nothing, so it cannot be used up by them either.
    pub fn hash_for(&self, holder: &[u8]) -> TokenHash {
        let mut digest = Sha256::new();
        digest.update(self.0.as_bytes());
        digest.update(b"\0");
        digest.update(holder);
        digest.finalize().into()
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
    fn a_holders_hash_is_its_own() {
        let token = OpaqueToken::generate();
        assert_eq!(token.hash_for(b"ada"), token.hash_for(b"ada"));
        assert_ne!(token.hash_for(b"ada"), token.hash_for(b"bob"));
        assert_ne!(token.hash_for(b"ada"), token.hash());
    }

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

    /// Property tests: whatever is presented, parsing never panics and accepts exactly the
    /// canonical encodings of 32 bytes.
    mod properties {
        use proptest::prelude::*;

        use super::*;

        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        proptest! {
            #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_text_is_accepted_only_as_a_canonical_32_byte_token(text in any::<String>()) {
                if let Some(token) = RefreshToken::parse(&text) {
                    let bytes = URL_SAFE_NO_PAD.decode(token.as_str()).unwrap();
                    prop_assert_eq!(bytes.len(), 32);
                    prop_assert_eq!(URL_SAFE_NO_PAD.encode(&bytes), token.as_str());
                    prop_assert_eq!(token.as_str(), text.trim());
                }
            }

            #[test]
            fn token_shaped_text_parses_iff_it_is_canonical(
                chars in prop::collection::vec(prop::sample::select(ALPHABET), ENCODED_LENGTH),
            ) {
                let text = String::from_utf8(chars).unwrap();
                let canonical = URL_SAFE_NO_PAD
                    .decode(&text)
                    .is_ok_and(|bytes| URL_SAFE_NO_PAD.encode(bytes) == text);
                prop_assert_eq!(RefreshToken::parse(&text).is_some(), canonical);
            }

            #[test]
            fn every_32_bytes_round_trip_with_surrounding_space(
                bytes in any::<[u8; 32]>(),
                padding in "[ \t\n]{0,3}",
            ) {
                let encoded = URL_SAFE_NO_PAD.encode(bytes);
                let token = RefreshToken::parse(&format!("{padding}{encoded}{padding}")).unwrap();
                prop_assert_eq!(token.as_str(), encoded.as_str());
                prop_assert_eq!(token.child(b"k"), RefreshToken::parse(token.child(b"k").as_str()).unwrap());
            }

            #[test]
            fn a_changed_character_is_another_token_or_none(
                bytes in any::<[u8; 32]>(),
                index in 0..ENCODED_LENGTH,
                replacement in any::<char>(),
            ) {
                let encoded = URL_SAFE_NO_PAD.encode(bytes);
                let original = RefreshToken::parse(&encoded).unwrap();
                let mut chars: Vec<char> = encoded.chars().collect();
                prop_assume!(chars[index] != replacement);
                chars[index] = replacement;
                let mutated: String = chars.into_iter().collect();
                if let Some(token) = RefreshToken::parse(&mutated) {
                    prop_assert_ne!(token.hash(), original.hash());
                }
            }
        }
    }
}
