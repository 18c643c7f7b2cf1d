//! Refresh-token rotation and reuse detection: what a presented token means, decided from the
//! state a backend read while holding the session's lock. Both backends feed this one rule and
//! only carry out its answer, so they cannot drift apart.
//!
//! Tokens of one session form a chain ordered by a generation counter, never by timestamps: the
//! current token has the session's generation, and rotating it makes its child current.

use chrono::{DateTime, Duration, Utc};

/// The session a presented token belongs to, as read under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// The generation of the session's current token.
    pub generation: i64,
    pub revoked: bool,
    /// The user was deleted or locked: none of their sessions rotates any more.
    pub user_barred: bool,
    pub created_at: DateTime<Utc>,
}

/// The presented token's own row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedToken {
    pub generation: i64,
    pub expires_at: DateTime<Utc>,
    /// When a rotation retired it; `None` while it is current.
    pub rotated_at: Option<DateTime<Utc>>,
}

/// How long a retired token may still be answered with its child, and how long a session may
/// live however active it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationWindow {
    pub grace_seconds: u64,
    pub session_max_lifetime_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationDecision {
    /// The token is current: retire it and make its child current at `next_generation`.
    Rotate { next_generation: i64 },
    /// The token was retired by the rotation that made the current one, within the grace window
    /// (a second tab, a lost answer): answer with that same child, change nothing.
    GraceReplay,
    /// A retired token outside the grace window, or an older one: someone holds a stolen chain.
    /// Revoke the session.
    RevokeForReuse,
    /// The token or the session has run out: the user signs in again.
    Expired,
    /// A revoked session or a user who may no longer sign in.
    Invalid,
}

/// A window in seconds as a duration; one too long for chrono is as good as forever.
fn seconds(value: u64) -> Duration {
    i64::try_from(value)
        .ok()
        .and_then(Duration::try_seconds)
        .unwrap_or(Duration::MAX)
}

pub fn decide(
    session: &SessionState,
    token: &PresentedToken,
    window: RotationWindow,
    now: DateTime<Utc>,
) -> RotationDecision {
    if session.revoked || session.user_barred {
        return RotationDecision::Invalid;
    }
    let lifetime = seconds(window.session_max_lifetime_seconds);
    if session
        .created_at
        .checked_add_signed(lifetime)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        < now
    {
        return RotationDecision::Expired;
    }
    if token.generation == session.generation {
        if token.expires_at <= now {
            return RotationDecision::Expired;
        }
        return RotationDecision::Rotate {
            next_generation: token.generation + 1,
        };
    }
    let grace = seconds(window.grace_seconds);
    let in_grace = token.rotated_at.is_some_and(|at| {
        at.checked_add_signed(grace)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
            > now
    });
    if token.generation + 1 == session.generation && in_grace {
        RotationDecision::GraceReplay
    } else {
        RotationDecision::RevokeForReuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: RotationWindow = RotationWindow {
        grace_seconds: 10,
        session_max_lifetime_seconds: 30 * 86_400,
    };

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).expect("in range")
    }

    fn session(generation: i64) -> SessionState {
        SessionState {
            generation,
            revoked: false,
            user_barred: false,
            created_at: at(0),
        }
    }

    fn current(generation: i64) -> PresentedToken {
        PresentedToken {
            generation,
            expires_at: at(7 * 86_400),
            rotated_at: None,
        }
    }

    fn retired(generation: i64, at_second: i64) -> PresentedToken {
        PresentedToken {
            rotated_at: Some(at(at_second)),
            ..current(generation)
        }
    }

    #[test]
    fn the_current_token_rotates_to_the_next_generation() {
        assert_eq!(
            decide(&session(3), &current(3), WINDOW, at(100)),
            RotationDecision::Rotate { next_generation: 4 }
        );
    }

    #[test]
    fn the_parent_within_the_grace_window_replays_and_after_it_is_reuse() {
        let parent = retired(3, 100);
        assert_eq!(
            decide(&session(4), &parent, WINDOW, at(109)),
            RotationDecision::GraceReplay
        );
        assert_eq!(
            decide(&session(4), &parent, WINDOW, at(110)),
            RotationDecision::RevokeForReuse
        );
    }

    #[test]
    fn a_grandparent_is_reuse_even_within_the_window() {
        assert_eq!(
            decide(&session(5), &retired(3, 100), WINDOW, at(101)),
            RotationDecision::RevokeForReuse
        );
    }

    #[test]
    fn expired_tokens_and_sessions_past_their_lifetime_are_expired() {
        let mut token = current(0);
        token.expires_at = at(50);
        assert_eq!(
            decide(&session(0), &token, WINDOW, at(50)),
            RotationDecision::Expired
        );
        let too_old = at(30 * 86_400 + 1);
        assert_eq!(
            decide(&session(0), &current(0), WINDOW, too_old),
            RotationDecision::Expired
        );
    }

    #[test]
    fn revoked_sessions_and_barred_users_are_invalid_before_anything_else() {
        let revoked = SessionState {
            revoked: true,
            ..session(4)
        };
        let barred = SessionState {
            user_barred: true,
            ..session(4)
        };
        for state in [revoked, barred] {
            assert_eq!(
                decide(&state, &current(4), WINDOW, at(1)),
                RotationDecision::Invalid
            );
            assert_eq!(
                decide(&state, &retired(1, 0), WINDOW, at(1)),
                RotationDecision::Invalid
            );
        }
    }

    #[test]
    fn huge_windows_do_not_overflow() {
        for huge in [u64::MAX, i64::MAX as u64, 1 << 60] {
            let window = RotationWindow {
                grace_seconds: huge,
                session_max_lifetime_seconds: huge,
            };
            assert_eq!(
                decide(&session(4), &retired(3, 0), window, at(1_000_000)),
                RotationDecision::GraceReplay
            );
        }
    }
}
