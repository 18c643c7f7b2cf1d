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

impl User {
    /// The name a mail to the account's address greets: only once the address is proven. Until
    /// then whoever signed up may not be the mailbox's owner, and the name is text of their
    /// choice in a mail to someone else (a reset or a notice to a squatted address).
    pub fn name_for_mail(&self) -> Option<&str> {
        self.name.as_deref().filter(|_| self.email_verified)
    }
}

/// `time` cut to the microseconds both stores keep, so a value made here reads like one that was
/// stored and read back.
pub fn at_store_precision(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

pub const MAX_NAME_LENGTH: usize = 200;

/// Characters that show nothing: trimmed from the ends of a name like white space, so a name of
/// nothing else is blank (a zero-width joiner inside one stays: emoji and some scripts need it).
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
        )
}

/// Bidirectional overrides and isolates: they reorder the text around them, so a name holding
/// one can show an admin screen something else than it says (CVE-2021-42574, "Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text a person chose to be shown (a display name, a passkey's name): trimmed of white space
/// and invisible characters, at most `max` characters, no control or bidirectional control
/// characters; blank means none.
pub fn check_display_text(raw: Option<&str>, max: usize) -> Result<Option<String>, String> {
    let Some(text) = raw
        .map(|text| text.trim_matches(is_invisible))
        .filter(|text| !text.is_empty())
    else {
        return Ok(None);
    };
    if text.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err("must not contain control or text-direction characters".into());
    }
    Ok(Some(text.to_string()))
}

/// A display name: [`check_display_text`] of at most 200 characters.
pub fn check_name(raw: Option<&str>) -> Result<Option<String>, String> {
    check_display_text(raw, MAX_NAME_LENGTH)
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
    fn invisible_characters_are_trimmed_and_text_direction_controls_refused() {
        for blank in [
            "\u{200B}\u{200B}",
            "\u{FEFF}",
            " \u{2060} ",
            "\u{3000}\u{00A0}",
        ] {
            assert_eq!(check_name(Some(blank)).unwrap(), None, "{blank:?}");
        }
        assert_eq!(
            check_name(Some("\u{200B}Ada\u{FEFF}")).unwrap(),
            Some("Ada".into())
        );
        // A joiner inside a name is part of it (a family emoji, a Persian name's ZWNJ).
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(check_name(Some(family)).unwrap(), Some(family.into()));
        assert!(check_name(Some("\u{202E}evil")).is_err());
        assert!(check_name(Some("Ada\u{2067}x")).is_err());
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
