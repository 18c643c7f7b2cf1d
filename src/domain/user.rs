use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A user as the rest of the service sees it; the password hash travels separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub email_verified: bool,
    pub locked: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `time` cut to the microseconds both stores keep, so a value made here reads like one that was
/// stored and read back.
pub fn at_store_precision(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

pub const MAX_NAME_LENGTH: usize = 200;

/// A display name: trimmed, at most 200 characters, no control characters; blank means none.
pub fn check_name(raw: Option<&str>) -> Result<Option<String>, String> {
    let Some(name) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_LENGTH {
        return Err(format!("must be at most {MAX_NAME_LENGTH} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(Some(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_blank_means_none() {
        assert_eq!(check_name(Some("  Ada  ")).unwrap(), Some("Ada".into()));
        assert_eq!(check_name(Some("   ")).unwrap(), None);
        assert_eq!(check_name(None).unwrap(), None);
    }

    #[test]
    fn names_refuse_control_characters_and_excess_length() {
        assert!(check_name(Some("Ada\u{0}")).is_err());
        assert!(check_name(Some(&"a".repeat(MAX_NAME_LENGTH + 1))).is_err());
        assert!(check_name(Some(&"é".repeat(MAX_NAME_LENGTH))).is_ok());
    }

    #[test]
    fn roles_round_trip_and_unknown_roles_are_refused() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Role::parse("Admin"), None);
    }
}
