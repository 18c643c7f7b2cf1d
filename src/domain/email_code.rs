//! The 6-digit code of a passwordless sign-in mail. A million values is few, so a code is only as
//! good as the limits around it: one live code per account, a few submissions per code, the
//! account's capped doubling, and a short life. It is kept as an HMAC keyed with a server secret
//! and bound to its account, so the table alone does not give it away.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::domain::opaque_token::TokenHash;

/// A fresh code, uniformly one of 000000..=999999.
pub fn generate() -> String {
    format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32))
}

/// What is stored for `code` of `user_id`'s sign-in.
pub fn code_hash(key: &[u8], user_id: Uuid, code: &str) -> TokenHash {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(b"authd/email-login-code/v1\0");
    mac.update(user_id.as_bytes());
    mac.update(code.trim().as_bytes());
    mac.finalize().into_bytes().into()
}

/// A presented code against the stored hash, in constant time.
pub fn matches(key: &[u8], user_id: Uuid, presented: &str, stored: &TokenHash) -> bool {
    let presented = presented.trim();
    let well_formed = presented.len() == 6 && presented.bytes().all(|b| b.is_ascii_digit());
    let candidate = code_hash(key, user_id, presented);
    well_formed && bool::from(candidate.ct_eq(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = generate();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn a_code_matches_its_own_account_and_key_only() {
        let (key, user) = (b"server-secret".as_slice(), Uuid::new_v4());
        let stored = code_hash(key, user, "042137");
        assert!(matches(key, user, "042137", &stored));
        assert!(matches(key, user, " 042137 ", &stored));
        assert!(!matches(key, user, "042138", &stored));
        assert!(!matches(key, Uuid::new_v4(), "042137", &stored));
        assert!(!matches(b"other-secret", user, "042137", &stored));
        assert!(!matches(key, user, "42137", &code_hash(key, user, "42137")));
    }
}
