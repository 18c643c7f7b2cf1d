//! One-time tokens (emailed links and their follow-up tokens): what each kind is for, and the one
//! rule that says whether a stored token may be used. Both backends read the token's row under a
//! lock and ask `usable`; they only write what it decides.

use chrono::{DateTime, Utc};

/// What an address-change token carries besides the new address: the session that asked for
/// the change. The change lives only as long as that session, so whatever ends it (a password
/// reset, a password change or a sign-out everywhere from another session, a lock) ends the
/// change too: an attacker's pending change does not outlive the owner's recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailChangeOrigin {
    pub session_id: uuid::Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    EmailVerification,
    PasswordReset,
    Invitation,
    /// Confirms a new address for an account: mailed to that address.
    EmailChange,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::EmailVerification => "email_verification",
            TokenKind::PasswordReset => "password_reset",
            TokenKind::Invitation => "invitation",
            TokenKind::EmailChange => "email_change",
        }
    }

    /// A new mailed token of this kind retires the outstanding ones of the account (or, for an
    /// invitation, which has no account yet, of the address), in the transaction that stores
    /// it: only the newest reset link opens anything, so an old mail found later in an inbox is
    /// worth nothing; inviting an address again (with another role, say) withdraws the earlier
    /// invitation; a second address change withdraws the link sent for the first.
    pub fn replaces_older(self) -> bool {
        matches!(
            self,
            TokenKind::PasswordReset | TokenKind::Invitation | TokenKind::EmailChange
        )
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            TokenKind::EmailVerification,
            TokenKind::PasswordReset,
            TokenKind::Invitation,
            TokenKind::EmailChange,
        ]
        .into_iter()
        .find(|k| k.as_str() == value)
    }
}

/// Which one-time tokens a use accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// Only tokens that were emailed: what `POST /auth/tokens/validate` exchanges, so a follow-up
    /// token cannot be exchanged for a fresh one again and again.
    Emailed,
    /// Emailed tokens and follow-up tokens alike: what the next step (verify, reset, signup)
    /// takes.
    Any,
}

/// Whether a lookup uses the token up or only reads what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneTimeAction {
    Peek,
    Consume,
}

/// What a caller is about to use a token for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneTimeUse<'a> {
    pub kinds: &'a [TokenKind],
    pub origin: TokenOrigin,
}

impl<'a> OneTimeUse<'a> {
    /// The next step of a flow: an emailed token or its follow-up.
    pub fn any(kinds: &'a [TokenKind]) -> Self {
        OneTimeUse {
            kinds,
            origin: TokenOrigin::Any,
        }
    }

    /// Only a token that came by mail.
    pub fn emailed(kinds: &'a [TokenKind]) -> Self {
        OneTimeUse {
            kinds,
            origin: TokenOrigin::Emailed,
        }
    }
}

/// A stored token's state, as the backend read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredOneTimeToken {
    pub kind: TokenKind,
    pub consumed: bool,
    pub expires_at: DateTime<Utc>,
    /// A follow-up token (the `one_time_token` cookie) rather than an emailed one.
    pub follow_up: bool,
}

/// Whether the token may be used now for `wanted`: unused, unexpired, of a wanted kind and origin.
pub fn usable(token: &StoredOneTimeToken, wanted: &OneTimeUse<'_>, now: DateTime<Utc>) -> bool {
    !token.consumed
        && token.expires_at > now
        && wanted.kinds.contains(&token.kind)
        && (wanted.origin == TokenOrigin::Any || !token.follow_up)
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
    fn a_token_is_usable_once_in_time_for_its_kind_and_origin() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("in range");
        let emailed = StoredOneTimeToken {
            kind: TokenKind::PasswordReset,
            consumed: false,
            expires_at: now + chrono::Duration::seconds(60),
            follow_up: false,
        };
        let reset = OneTimeUse {
            kinds: &[TokenKind::PasswordReset],
            origin: TokenOrigin::Emailed,
        };
        assert!(usable(&emailed, &reset, now));
        let consumed = StoredOneTimeToken {
            consumed: true,
            ..emailed
        };
        assert!(!usable(&consumed, &reset, now));
        assert!(!usable(&emailed, &reset, emailed.expires_at));
        let other_kind = OneTimeUse {
            kinds: &[TokenKind::Invitation, TokenKind::EmailVerification],
            ..reset
        };
        assert!(!usable(&emailed, &other_kind, now));
        let follow_up = StoredOneTimeToken {
            follow_up: true,
            ..emailed
        };
        assert!(
            !usable(&follow_up, &reset, now),
            "a follow-up is not exchanged again"
        );
        let next_step = OneTimeUse {
            origin: TokenOrigin::Any,
            ..reset
        };
        assert!(usable(&follow_up, &next_step, now));
    }
}
