//! Emailed one-time tokens: what each kind is for and how long it lives by default.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    EmailVerification,
    PasswordReset,
    Invitation,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::EmailVerification => "email_verification",
            TokenKind::PasswordReset => "password_reset",
            TokenKind::Invitation => "invitation",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            TokenKind::EmailVerification,
            TokenKind::PasswordReset,
            TokenKind::Invitation,
        ]
        .into_iter()
        .find(|k| k.as_str() == value)
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

    #[test]
    fn kinds_round_trip() {
        for kind in [
            TokenKind::EmailVerification,
            TokenKind::PasswordReset,
            TokenKind::Invitation,
        ] {
            assert_eq!(TokenKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TokenKind::parse("refresh"), None);
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
}
