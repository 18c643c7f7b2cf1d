//! Access-token claims, as the contract names them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::assurance::AuthMethods;
use super::user::{Role, User};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: Uuid,
    /// Session id (the refresh-token family).
    pub sid: Uuid,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Unique id, the key of the access-token denylist.
    pub jti: Uuid,
    /// How the session was authenticated (RFC 8176 values). Tokens signed before authd knew
    /// assurance have none, and count as level 1, authenticated at time 0 (they must step up).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Authenticator assurance level, 1 or 2 (NIST SP 800-63B).
    #[serde(default = "level_one")]
    pub aal: u8,
    /// When the session last proved who it is (login, second factor, re-authentication).
    #[serde(default)]
    pub auth_time: i64,
}

fn level_one() -> u8 {
    1
}

/// What a session proved, and when: what its access tokens say of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAssurance {
    pub methods: AuthMethods,
    /// Unix seconds.
    pub authenticated_at: i64,
}

/// An authenticated caller: the verified claims of their access token and their account as the
/// store holds it at this moment (role and lock included, which the token may no longer reflect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub claims: AccessClaims,
    pub user: User,
}

impl AccessClaims {
    pub fn new(
        user_id: Uuid,
        session_id: Uuid,
        role: Role,
        assurance: &SessionAssurance,
        (iss, aud): (&str, &str),
        now: i64,
        ttl_seconds: i64,
    ) -> Self {
        AccessClaims {
            sub: user_id,
            sid: session_id,
            role,
            iss: iss.to_string(),
            aud: aud.to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl_seconds,
            jti: Uuid::new_v4(),
            amr: assurance.methods.amr(),
            aal: assurance.methods.aal(),
            auth_time: assurance.authenticated_at,
        }
    }

    /// Whether the token's times are ones authd gives: issued no later than `now` (give or take
    /// `leeway`), valid from its issue, and expiring at most `max_lifetime` after it. A valid
    /// signature makes other times possible only for whoever holds the signing key; this bounds
    /// what such a key can mint (a token that lives for years, or one dated in the future).
    pub fn has_issued_times(&self, now: i64, max_lifetime: i64, leeway: i64) -> bool {
        self.iat <= now.saturating_add(leeway)
            && self.nbf >= self.iat
            && self.exp > self.iat
            && self.exp.saturating_sub(self.iat) <= max_lifetime
    }

    /// Seconds until expiry, never negative.
    pub fn remaining_seconds(&self, now: i64) -> u64 {
        (self.exp - now).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::assurance::AuthMethod;

    fn password_at(authenticated_at: i64) -> SessionAssurance {
        SessionAssurance {
            methods: AuthMethods::password(),
            authenticated_at,
        }
    }

    #[test]
    fn only_the_times_authd_issues_pass() {
        let names = ("authd", "authd");
        let issued = |now| {
            AccessClaims::new(
                Uuid::nil(),
                Uuid::nil(),
                Role::User,
                &password_at(now),
                names,
                now,
                900,
            )
        };
        let token = issued(1_000);
        assert!(token.has_issued_times(1_000, 900, 30));
        assert!(
            token.has_issued_times(1_899, 900, 30),
            "expiry is jsonwebtoken's to check"
        );
        let ahead = issued(1_030);
        assert!(
            ahead.has_issued_times(1_000, 900, 30),
            "a clock within the leeway"
        );
        let future = issued(1_031);
        assert!(!future.has_issued_times(1_000, 900, 30));
        let long = AccessClaims {
            exp: token.iat + 901,
            ..token.clone()
        };
        assert!(!long.has_issued_times(1_000, 900, 30));
        let shortened = AccessClaims {
            exp: token.iat + 10,
            ..token.clone()
        };
        assert!(shortened.has_issued_times(1_000, 900, 30));
        let backwards = AccessClaims {
            exp: token.iat,
            ..token.clone()
        };
        assert!(!backwards.has_issued_times(1_000, 900, 30));
        let early = AccessClaims {
            nbf: token.iat - 1,
            ..token
        };
        assert!(!early.has_issued_times(1_000, 900, 30));
    }

    #[test]
    fn lifetime_and_unique_ids() {
        let at = password_at(990);
        let names = ("authd", "authd");
        let a = AccessClaims::new(
            Uuid::new_v4(),
            Uuid::new_v4(),
            Role::User,
            &at,
            names,
            1_000,
            900,
        );
        let b = AccessClaims::new(a.sub, a.sid, Role::User, &at, names, 1_000, 900);
        assert_eq!(a.exp - a.iat, 900);
        assert_eq!(a.nbf, a.iat);
        assert_ne!(a.jti, b.jti);
        assert_eq!(a.remaining_seconds(1_100), 800);
        assert_eq!(a.remaining_seconds(5_000), 0);
    }

    #[test]
    fn serialises_with_contract_names() {
        let assurance = SessionAssurance {
            methods: AuthMethods::of(&[AuthMethod::Password, AuthMethod::Totp]),
            authenticated_at: 1,
        };
        let c = AccessClaims::new(
            Uuid::nil(),
            Uuid::nil(),
            Role::Admin,
            &assurance,
            ("i", "a"),
            1,
            2,
        );
        let v = serde_json::to_value(&c).unwrap();
        for key in [
            "sub",
            "sid",
            "role",
            "iss",
            "aud",
            "iat",
            "nbf",
            "exp",
            "jti",
            "amr",
            "aal",
            "auth_time",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["role"], "admin");
        assert_eq!(v["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
        assert_eq!(v["aal"], 2);
    }

    #[test]
    fn a_token_from_before_assurance_reads_as_level_one_authenticated_at_zero() {
        let c = AccessClaims::new(
            Uuid::nil(),
            Uuid::nil(),
            Role::User,
            &password_at(5),
            ("i", "a"),
            1,
            2,
        );
        let mut v = serde_json::to_value(&c).unwrap();
        for key in ["amr", "aal", "auth_time"] {
            v.as_object_mut().unwrap().remove(key);
        }
        let old: AccessClaims = serde_json::from_value(v).unwrap();
        assert_eq!((old.amr.len(), old.aal, old.auth_time), (0, 1, 0));
    }
}
