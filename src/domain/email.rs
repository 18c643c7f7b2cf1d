//! Email addresses: trimmed, checked for shape, compared case-insensitively.

use validator::ValidateEmail;

/// RFC 5321's limit on a forward path.
pub const MAX_EMAIL_LENGTH: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailError {
    Invalid,
    TooLong,
}

impl EmailError {
    pub fn message(&self) -> &'static str {
        match self {
            EmailError::Invalid => "must be a valid email address",
            EmailError::TooLong => "must be at most 254 characters",
        }
    }
}

/// Trims the address and checks its shape; the case is kept as the user typed it.
pub fn parse(raw: &str) -> Result<String, EmailError> {
    let email = raw.trim();
    if email.len() > MAX_EMAIL_LENGTH {
        return Err(EmailError::TooLong);
    }
    if !email.validate_email() {
        return Err(EmailError::Invalid);
    }
    Ok(email.to_string())
}

/// The key two addresses are compared by: one account per address whatever its case.
pub fn canonical(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_keeps_case() {
        assert_eq!(parse("  Ada@Example.com ").unwrap(), "Ada@Example.com");
    }

    #[test]
    fn canonical_form_ignores_case_and_spaces() {
        assert_eq!(canonical(" Ada@Example.COM"), canonical("ada@example.com"));
    }

    #[test]
    fn refuses_malformed_and_oversized_addresses() {
        for bad in ["", "ada", "ada@", "@example.com", "a b@example.com"] {
            assert_eq!(parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(parse(&long), Err(EmailError::TooLong));
    }
}
