//! Per-account login throttling: after `threshold` failures in a row, each further failure makes
//! the account wait twice as long as the last (from `base_delay`), never longer than `max_delay`.
//! A success clears it; failures are forgotten `forget_after` after the last one. The delay is
//! capped so an attacker can slow a real user down but never lock them out for good (OWASP).

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::email;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub forget_after: Duration,
}

impl LockoutPolicy {
    /// How long the account must wait after its `failures`-th failure in a row.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        if failures < self.threshold {
            return None;
        }
        let factor = 2u32
            .checked_pow(failures - self.threshold)
            .unwrap_or(u32::MAX);
        Some(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }
}

/// The throttling key of an address: a hash of its canonical form, so that case variants share one
/// allowance and no address is written to the cache in clear. Unknown addresses get keys too, so
/// throttling says nothing about which accounts exist.
pub fn account_key(raw_email: &str) -> String {
    let digest = Sha256::digest(email::canonical(raw_email).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            threshold: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(900),
            forget_after: Duration::from_secs(86400),
        }
    }

    #[test]
    fn no_delay_below_the_threshold_then_doubling_up_to_the_cap() {
        let p = policy();
        assert_eq!(p.delay_after(4), None);
        assert_eq!(p.delay_after(5), Some(Duration::from_secs(1)));
        assert_eq!(p.delay_after(6), Some(Duration::from_secs(2)));
        assert_eq!(p.delay_after(14), Some(Duration::from_secs(512)));
        assert_eq!(p.delay_after(15), Some(Duration::from_secs(900)));
        assert_eq!(p.delay_after(u32::MAX), Some(Duration::from_secs(900)));
    }

    #[test]
    fn case_variants_share_a_key_and_keys_hide_the_address() {
        assert_eq!(
            account_key("Ada@Example.com "),
            account_key("ada@example.com")
        );
        assert_ne!(
            account_key("ada@example.com"),
            account_key("bob@example.com")
        );
        assert!(!account_key("ada@example.com").contains("ada"));
        assert_eq!(account_key("x@example.com").len(), 64);
    }
}
