//! Access-token claims, as the contract names them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
        iss: &str,
        aud: &str,
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
        }
    }

    /// Seconds until expiry, never negative.
    pub fn remaining_seconds(&self, now: i64) -> u64 {
        (self.exp - now).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_and_unique_ids() {
        let a = AccessClaims::new(
            Uuid::new_v4(),
            Uuid::new_v4(),
            Role::User,
            "authd",
            "authd",
            1_000,
            900,
        );
        let b = AccessClaims::new(a.sub, a.sid, Role::User, "authd", "authd", 1_000, 900);
        assert_eq!(a.exp - a.iat, 900);
        assert_eq!(a.nbf, a.iat);
        assert_ne!(a.jti, b.jti);
        assert_eq!(a.remaining_seconds(1_100), 800);
        assert_eq!(a.remaining_seconds(5_000), 0);
    }

    #[test]
    fn serialises_with_contract_names() {
        let c = AccessClaims::new(Uuid::nil(), Uuid::nil(), Role::Admin, "i", "a", 1, 2);
        let v = serde_json::to_value(&c).unwrap();
        for key in [
            "sub", "sid", "role", "iss", "aud", "iat", "nbf", "exp", "jti",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["role"], "admin");
    }
}
