//! Per-account login throttling: after `threshold` failures in a row, each further failure makes
//! the account wait twice as long as the last (from `base_delay`), never longer than `max_delay`.
//! A success clears it; failures are forgotten `forget_after` after the last one. The delay is
//! capped so an attacker can slow a real user down but never lock them out for good (OWASP).

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::email::CanonicalEmail;

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

/// What is remembered of one account's recent attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Attempts reserved since the last success, those still being verified included.
    pub failures: u32,
    /// No attempt is granted before this (time since the caller's epoch).
    pub blocked_until: Option<Duration>,
}

/// The answer to a request for one login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Go ahead and verify; the attempt already counts as a failure until a success clears it.
    /// `delay` is the wait this attempt imposes on the next one, if the threshold is reached.
    Granted { delay: Option<Duration> },
    /// The account must wait this long first; nothing was counted.
    Refused { wait: Duration },
}

impl LockoutPolicy {
    /// Reserves one attempt at `now`, before any password is verified. Counting the attempt up
    /// front (not after the verification) is what makes concurrent guesses see each other: of ten
    /// sent at once only `threshold` are granted, the rest wait.
    pub fn reserve(&self, record: AttemptRecord, now: Duration) -> (AttemptRecord, Reservation) {
        if let Some(until) = record.blocked_until.filter(|until| *until > now) {
            return (record, Reservation::Refused { wait: until - now });
        }
        let failures = record.failures.saturating_add(1);
        let delay = self.delay_after(failures);
        let record = AttemptRecord {
            failures,
            blocked_until: delay.map(|d| now + d),
        };
        (record, Reservation::Granted { delay })
    }

    /// How long after a granted attempt its record may be forgotten.
    pub fn keep_for(&self, delay: Option<Duration>) -> Duration {
        self.forget_after + delay.unwrap_or_default()
    }
}

/// The throttling key of an address: a hash of its canonical form, so that case variants share one
/// allowance and no address is written to the cache in clear. Unknown addresses get keys too, so
/// throttling says nothing about which accounts exist.
pub fn account_key(raw_email: &str) -> String {
    let digest = Sha256::digest(CanonicalEmail::of(raw_email).as_str().as_bytes());
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

    /// Plays `attempts` reservations at the given times (seconds) and answers each verdict.
    fn play(policy: &LockoutPolicy, times: &[u64]) -> Vec<Reservation> {
        let mut record = AttemptRecord::default();
        times
            .iter()
            .map(|t| {
                let (next, verdict) = policy.reserve(record, Duration::from_secs(*t));
                record = next;
                verdict
            })
            .collect()
    }

    /// Verified once `seconds` have passed.
    fn granted_after(seconds: u64) -> Reservation {
        Reservation::Granted {
            delay: Some(Duration::from_secs(seconds)),
        }
    }

    /// Not verified; the client is told to wait `seconds`.
    fn refused_for(seconds: u64) -> Reservation {
        Reservation::Refused {
            wait: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn concurrent_attempts_get_threshold_grants_and_the_rest_wait() {
        let p = policy();
        // Ten guesses at the same instant: five are verified, five wait a second.
        let verdicts = play(&p, &[100; 10]);
        let granted = verdicts
            .iter()
            .filter(|v| matches!(v, Reservation::Granted { .. }))
            .count();
        assert_eq!(granted, 5);
        assert_eq!(verdicts[5], refused_for(1));
        assert_eq!(verdicts[4], granted_after(1));
    }

    #[test]
    fn after_each_wait_one_more_attempt_doubles_it() {
        let verdicts = play(&policy(), &[0, 0, 0, 0, 0, 1, 1, 3, 3]);
        assert_eq!(verdicts[5], granted_after(2));
        assert_eq!(verdicts[6], refused_for(2));
        assert_eq!(verdicts[7], granted_after(4));
        assert!(matches!(verdicts[8], Reservation::Refused { .. }));
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
