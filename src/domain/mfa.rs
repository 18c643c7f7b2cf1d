//! Second factors: TOTP (RFC 6238) codes and recovery codes. Which time step a code belongs to is
//! decided here; that a step is accepted at most once is the store's compare-and-set on
//! `last_used_step` (a code never works twice, even when two arrive at once).

use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use super::opaque_token::TokenHash;

/// RFC 6238's defaults, which every authenticator app understands.
const DIGITS: usize = 6;
const PERIOD_SECONDS: u64 = 30;
/// 160 bits, RFC 4226's recommended secret length.
const SECRET_BYTES: usize = 20;
/// Codes shown at enrolment (and at each regeneration).
pub const RECOVERY_CODE_COUNT: usize = 10;
/// 16 base32 characters: 80 random bits, shown as four groups of four.
const RECOVERY_CODE_CHARS: usize = 16;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A TOTP secret in clear: only ever inside authd's memory and in the enrolment answer.
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        TotpSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, issuer: &str, account: &str) -> Option<TOTP> {
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            0,
            PERIOD_SECONDS,
            self.0.clone(),
            Some(issuer.to_string()).filter(|i| !i.is_empty() && !i.contains(':')),
            account.replace(':', ""),
        )
        .ok()
    }

    /// The secret as an authenticator app types it in (RFC 4648 base32, no padding).
    pub fn base32(&self) -> String {
        totp_rs::Secret::Raw(self.0.clone())
            .to_encoded()
            .to_string()
    }

    /// The `otpauth://totp/...` URI a QR code carries.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Option<String> {
        Some(self.totp(issuer, account)?.get_url())
    }

    /// The code of time step `step`.
    fn code_at(&self, step: i64) -> Option<String> {
        let totp = self.totp("", "account")?;
        let time = u64::try_from(step).ok()?.checked_mul(PERIOD_SECONDS)?;
        Some(totp.generate(time))
    }

    /// The time step `code` belongs to, among the current one and `skew` steps either side (for
    /// clocks that drift), if any. Every candidate is compared, in constant time.
    pub fn matching_step(&self, code: &str, now_unix: i64, skew: u8) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = now_unix.div_euclid(PERIOD_SECONDS as i64);
        let mut found = None;
        for step in current - i64::from(skew)..=current + i64::from(skew) {
            let Some(expected) = self.code_at(step) else {
                continue;
            };
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

/// A fresh set of recovery codes, formatted for the user (`abcd-efgh-ijkl-mnop`).
pub fn generate_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let chars: Vec<char> = (0..RECOVERY_CODE_CHARS)
                .map(|_| BASE32[OsRng.gen_range(0..BASE32.len())] as char)
                .collect();
            chars
                .chunks(4)
                .map(|group| group.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// What the store keeps of a recovery code: SHA-256 of its letters, lowercased, without the
/// dashes and spaces people type. 80 random bits need no slow hash; a malformed code has none.
pub fn recovery_code_hash(code: &str) -> Option<TokenHash> {
    let letters: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (letters.len() == RECOVERY_CODE_CHARS && letters.bytes().all(|b| BASE32.contains(&b)))
        .then(|| Sha256::digest(letters.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    #[test]
    fn codes_match_rfc_6238_and_name_their_step() {
        let secret = rfc_secret();
        // T = 59 s: the RFC's 8-digit 94287082, of which six digits are 287082.
        assert_eq!(secret.matching_step("287082", 59, 0), Some(1));
        // T = 1111111109 s: 07081804 -> 081804.
        assert_eq!(
            secret.matching_step("081804", 1_111_111_109, 1),
            Some(1_111_111_109 / 30)
        );
    }

    #[test]
    fn the_window_is_the_skew_either_side_and_nothing_else_matches() {
        let secret = rfc_secret();
        let now = 1_111_111_109;
        let step = now / 30;
        let previous = secret.code_at(step - 1).unwrap();
        assert_eq!(secret.matching_step(&previous, now, 1), Some(step - 1));
        assert_eq!(secret.matching_step(&previous, now, 0), None);
        let two_back = secret.code_at(step - 2).unwrap();
        assert_eq!(secret.matching_step(&two_back, now, 1), None);
        for bad in ["", "12345", "1234567", "abcdef", "08180 "] {
            assert_eq!(secret.matching_step(bad, now, 1), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_names_the_issuer_and_account_and_carries_the_secret() {
        let secret = TotpSecret::generate();
        assert_eq!(secret.as_bytes().len(), 20);
        let uri = secret.otpauth_uri("authd", "ada@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/authd:ada%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains(&format!("secret={}", secret.base32())),
            "{uri}"
        );
        assert!(uri.contains("issuer=authd"), "{uri}");
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_however_they_are_typed() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
        let code = &codes[0];
        assert_eq!(code.len(), 19);
        let hash = recovery_code_hash(code).unwrap();
        let typed = code.to_uppercase().replace('-', " ");
        assert_eq!(recovery_code_hash(&typed), Some(hash));
        assert_eq!(recovery_code_hash(&code[..18]), None);
        assert_eq!(recovery_code_hash("0000-0000-0000-0000"), None);
    }
}
