//! Email addresses: Unicode-normalised (NFKC), trimmed, checked for shape, and compared by a
//! canonical form: the local part lowercased, the domain as IDNA (UTS #46) ASCII. Two spellings
//! of one mailbox (`x@example.com`, fullwidth `x@ｅｘａｍｐｌｅ.com`, an NFD `é`, `X@EXAMPLE.COM`)
//! are one account.

use unicode_normalization::UnicodeNormalization;
use validator::ValidateEmail;

/// RFC 5321's limit on a forward path.
pub const MAX_EMAIL_LENGTH: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailError {
    /// None was given (an absent field reads as empty).
    Missing,
    Invalid,
    TooLong,
}

impl EmailError {
    pub fn message(&self) -> &'static str {
        match self {
            EmailError::Missing => "is required",
            EmailError::Invalid => "must be a valid email address",
            EmailError::TooLong => "must be at most 254 characters",
        }
    }
}

/// An address as the user typed it, normalised (NFKC, trimmed) and checked for shape, with the
/// key it is compared by. The only way to get one is `parse`, so an unchecked address never
/// reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    address: String,
    canonical: CanonicalEmail,
}

/// The key two addresses are compared by: one account per mailbox, whatever its case, Unicode
/// form or the script its domain is written in. The local part is lowercased, the domain is IDNA
/// (UTS #46) ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalEmail(String);

impl EmailAddress {
    /// An address an account may take (signup, a change, an invitation, an import, a provider's
    /// new account): [`EmailAddress::parse`], and one mail on the internet reaches.
    pub fn parse_new(raw: &str) -> Result<Self, EmailError> {
        let address = Self::parse(raw)?;
        let (local, domain) = address.address.rsplit_once('@').unwrap_or(("", ""));
        if !is_deliverable_domain(domain) || !is_dot_atom(local) {
            return Err(EmailError::Invalid);
        }
        Ok(address)
    }

    /// Normalises and checks the shape; the case is kept as typed (it is what mail goes to).
    /// Enough to look an account up (a login, a reset): an account made before a stricter
    /// rule keeps working.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let email: String = raw.trim().nfkc().collect();
        let email = email.trim();
        if email.is_empty() {
            return Err(EmailError::Missing);
        }
        if email.len() > MAX_EMAIL_LENGTH {
            return Err(EmailError::TooLong);
        }
        if !email.validate_email() {
            return Err(EmailError::Invalid);
        }
        Ok(EmailAddress {
            address: email.to_string(),
            canonical: CanonicalEmail::of(email),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.address
    }

    pub fn canonical(&self) -> &CanonicalEmail {
        &self.canonical
    }

    pub fn into_string(self) -> String {
        self.address
    }
}

/// A domain mail on the internet reaches: one IDNA accepts (a zero-width joiner in it, say, is
/// refused, and its canonical form could only be a guess no real spelling shares), with a dot (not
/// `localhost`, not a bare host name), not an address literal (`[127.0.0.1]`) nor a bare IP
/// address (a top-level label of digits only).
fn is_deliverable_domain(domain: &str) -> bool {
    let top_level = domain.rsplit('.').next().unwrap_or_default();
    !domain.starts_with('[')
        && !top_level.chars().all(|c| c.is_ascii_digit())
        && domain.contains('.')
        && !domain.ends_with('.')
        && idna::domain_to_ascii(domain).is_ok()
}

/// An unquoted local part as RFC 5322 writes it: no dot at either end and no two in a row
/// (`a..b`, `.a`). A quoted one (`"a..b"`) is left to the address check.
fn is_dot_atom(local: &str) -> bool {
    local.starts_with('"')
        || !(local.starts_with('.') || local.ends_with('.') || local.contains(".."))
}

impl CanonicalEmail {
    /// The key of any text, checked or not: a login compares what was typed without refusing it,
    /// so a malformed address is simply one that matches no account.
    pub fn of(email: &str) -> Self {
        let normalized: String = email.trim().nfkc().collect();
        let normalized = normalized.trim();
        CanonicalEmail(match normalized.rsplit_once('@') {
            Some((local, domain)) => {
                let domain =
                    idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_lowercase());
                format!("{}@{domain}", local.to_lowercase())
            }
            None => normalized.to_lowercase(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(email: &str) -> CanonicalEmail {
        CanonicalEmail::of(email)
    }

    fn parse(raw: &str) -> Result<String, EmailError> {
        EmailAddress::parse_new(raw).map(EmailAddress::into_string)
    }

    #[test]
    fn trims_and_keeps_case() {
        assert_eq!(parse("  Ada@Example.com ").unwrap(), "Ada@Example.com");
    }

    #[test]
    fn canonical_form_ignores_case_and_spaces() {
        assert_eq!(canonical(" Ada@Example.COM"), canonical("ada@example.com"));
    }

    #[test]
    fn unicode_spellings_of_one_mailbox_share_the_canonical_form() {
        let plain = canonical("x@example.com");
        // Fullwidth domain, fullwidth local part, NFD vs NFC, an IDN in Unicode and punycode.
        assert_eq!(
            canonical("x@\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}.com"),
            plain
        );
        assert_eq!(canonical("\u{FF38}@example.com"), plain);
        assert_eq!(
            canonical("re\u{0301}my@example.com"),
            canonical("r\u{00E9}my@example.com")
        );
        assert_eq!(
            canonical("ada@B\u{00FC}cher.example"),
            canonical("ada@xn--bcher-kva.example")
        );
        assert_ne!(canonical("x@example.com"), canonical("y@example.com"));
        assert_eq!(
            parse("x@\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}.com").unwrap(),
            "x@example.com"
        );
    }

    #[test]
    fn refuses_addresses_no_mail_reaches() {
        for undeliverable in [
            "a@localhost",
            "a@b",
            "a@[127.0.0.1]",
            "a@127.0.0.1",
            "a@10.0.0.5",
            "a..b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a@example.com.",
        ] {
            assert_eq!(
                parse(undeliverable),
                Err(EmailError::Invalid),
                "{undeliverable}"
            );
        }
        assert!(parse("first.last+tag@mail.example.co.uk").is_ok());
    }

    #[test]
    fn refuses_a_domain_idna_refuses() {
        assert_eq!(
            parse("dup@exa\u{200D}mple.com"),
            Err(EmailError::Invalid),
            "a zero-width joiner"
        );
        assert!(parse("ada@b\u{00FC}cher.example").is_ok());
    }

    #[test]
    fn refuses_malformed_and_oversized_addresses() {
        for bad in ["ada", "ada@", "@example.com", "a b@example.com"] {
            assert_eq!(parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
        assert_eq!(parse("  "), Err(EmailError::Missing));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(parse(&long), Err(EmailError::TooLong));
    }
}
