//! How the durable queues (the mail outbox, webhook deliveries) retry a failed attempt: one rule
//! for both.

use std::time::Duration;

/// The retry settings of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all before an item is given up (dead).
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles with each further failure.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl RetryPolicy {
    /// After failed attempt number `attempts` (1 for the first): `None` once `max_attempts` have
    /// failed, else the seconds to wait, [`backoff`] with `jitter` in [0, 1) and at least one
    /// (the queues schedule in whole seconds).
    pub fn retry_after(&self, attempts: u32, jitter: f64) -> Option<u64> {
        (attempts < self.max_attempts).then(|| {
            backoff(attempts, self.base, self.max, jitter)
                .as_secs()
                .max(1)
        })
    }
}

/// The wait before retry `attempt` (1 for the first retry): `base x 2^(attempt-1)`, capped at
/// `max`, then spread by up to a fifth either way with `jitter` in [0, 1) so that a burst of
/// failures does not retry in lockstep.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let factor = 2u32
        .checked_pow(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    let wait = base.saturating_mul(factor).min(max);
    let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    wait.mul_f64(spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32, base: Duration, max: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base,
            max,
        }
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_within_a_fifth() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, base, max, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(3, base, max, 0.5), Duration::from_secs(8));
        assert_eq!(backoff(30, base, max, 0.5), Duration::from_secs(60));
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_millis(1600));
        assert!(backoff(1, base, max, 0.999) < Duration::from_millis(2400));
    }

    #[test]
    fn a_failure_is_retried_until_the_last_attempt_then_given_up() {
        let policy = policy(3, Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(policy.retry_after(1, 0.5), Some(10));
        assert_eq!(policy.retry_after(2, 0.5), Some(20));
        assert_eq!(
            policy.retry_after(3, 0.5),
            None,
            "the third failure is the last"
        );
        assert_eq!(policy.retry_after(7, 0.5), None);
    }

    #[test]
    fn a_retry_waits_at_least_a_second() {
        let policy = policy(5, Duration::from_millis(100), Duration::from_millis(100));
        assert_eq!(policy.retry_after(1, 0.0), Some(1));
    }
}
