//! Password rules after NIST SP 800-63B §5.1.1.2: length only, counted in Unicode code points after
//! NFKC normalisation, no composition rules. The normalised form is what gets hashed, so the same
//! password typed on two keyboards that produce different code points still verifies.

use unicode_normalization::UnicodeNormalization;

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordError {
    TooShort,
    TooLong,
}

impl PasswordError {
    pub fn message(&self) -> String {
        match self {
            PasswordError::TooShort => format!("must be at least {MIN_LENGTH} characters"),
            PasswordError::TooLong => format!("must be at most {MAX_LENGTH} characters"),
        }
    }
}

/// NFKC form of a password, the form that is hashed and verified.
pub fn normalize(raw: &str) -> String {
    raw.nfkc().collect()
}

/// Checks a new password against the policy and returns the form to hash.
pub fn check_new(raw: &str) -> Result<String, PasswordError> {
    let normalized = normalize(raw);
    let length = normalized.chars().count();
    if length < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        // Seven three-byte characters are still seven characters.
        assert_eq!(check_new("ääääääá"), Err(PasswordError::TooShort));
        assert!(check_new("ääääääää").is_ok());
    }

    #[test]
    fn bounds_are_inclusive() {
        assert!(check_new(&"x".repeat(MIN_LENGTH)).is_ok());
        assert!(check_new(&"x".repeat(MAX_LENGTH)).is_ok());
        assert_eq!(
            check_new(&"x".repeat(MAX_LENGTH + 1)),
            Err(PasswordError::TooLong)
        );
        assert_eq!(
            check_new(&"x".repeat(MIN_LENGTH - 1)),
            Err(PasswordError::TooShort)
        );
    }

    #[test]
    fn no_composition_rules() {
        assert!(check_new("all lower case words").is_ok());
    }

    #[test]
    fn compatibility_forms_normalise_to_the_same_password() {
        // U+FB01 (ligature fi) and U+2460 (circled one) fold to "fi" and "1" under NFKC.
        assert_eq!(normalize("\u{FB01}le\u{2460}"), "file1");
        assert_eq!(
            check_new("\u{FB01}lename\u{2460}2"),
            check_new("filename12")
        );
    }
}
