//! Rules of signing in through another provider (OAuth 2.0 / OpenID Connect): which account an
//! identity opens, where a browser may be sent back, and how a native app's nonce is compared.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;
use uuid::Uuid;

/// What the store knows about an identity a provider vouched for, and what the provider said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityFacts {
    /// The account this (provider, subject) is linked to, if any.
    pub linked_to: Option<Uuid>,
    /// The provider gave an address.
    pub has_email: bool,
    /// The provider says the address is verified.
    pub email_verified: bool,
    /// A live account holds that address.
    pub account_with_email: Option<Uuid>,
    /// `oauth.allow_signup`.
    pub allow_signup: bool,
}

/// What a sign-in through a provider leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityDecision {
    /// A known identity: its account signs in.
    SignIn(Uuid),
    /// The address belongs to an account this identity is not linked to. The account must prove
    /// itself (sign in) before the identity is linked: never silently.
    LinkRequired(Uuid),
    /// A new account for the identity, linked to it.
    CreateAccount,
    Refuse(IdentityRefusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityRefusal {
    /// No address from the provider: nothing to make an account with.
    NoEmail,
    /// The address belongs to an account, and the provider has not verified it: whoever holds
    /// this identity may not even be offered the link.
    UnverifiedEmailTaken,
    /// New accounts through providers are off.
    SignupClosed,
}

/// The linking rule: a known identity signs in its account; an address that an account holds is
/// linked only after that account proves itself (and only when the provider verified it); other
/// identities get a new account when signup is open.
pub fn decide(facts: IdentityFacts) -> IdentityDecision {
    if let Some(user_id) = facts.linked_to {
        return IdentityDecision::SignIn(user_id);
    }
    if !facts.has_email {
        return IdentityDecision::Refuse(IdentityRefusal::NoEmail);
    }
    match facts.account_with_email {
        Some(account) if facts.email_verified => IdentityDecision::LinkRequired(account),
        Some(_) => IdentityDecision::Refuse(IdentityRefusal::UnverifiedEmailTaken),
        None if facts.allow_signup => IdentityDecision::CreateAccount,
        None => IdentityDecision::Refuse(IdentityRefusal::SignupClosed),
    }
}

/// Where browsers may be sent back to after a sign-in: each entry an origin with a path prefix.
#[derive(Debug, Clone)]
pub struct ReturnUrls {
    allowed: Vec<Url>,
}

impl ReturnUrls {
    /// From configured entries (absolute http(s) URLs); the first is the default destination.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let allowed = entries
            .iter()
            .map(|entry| {
                let url = Url::parse(entry.trim()).map_err(|e| format!("{entry:?}: {e}"))?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.host_str().is_none()
                    || url.query().is_some()
                    || url.fragment().is_some()
                    || !url.username().is_empty()
                {
                    return Err(format!(
                        "{entry:?} is not an http(s) origin with an optional path"
                    ));
                }
                Ok(url)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if allowed.is_empty() {
            return Err("no return URL is allowed".into());
        }
        Ok(ReturnUrls { allowed })
    }

    /// The default destination: the first allowed entry.
    pub fn default_url(&self) -> &Url {
        &self.allowed[0]
    }

    /// `candidate` if it is an absolute URL on an allowed origin, under its path prefix, with no
    /// credentials; `None` otherwise (never a redirect anywhere else). Its fragment is dropped:
    /// the outcome of the sign-in goes there. An absent candidate is the default destination.
    pub fn check(&self, candidate: Option<&str>) -> Option<Url> {
        let Some(candidate) = candidate.map(str::trim).filter(|c| !c.is_empty()) else {
            return Some(self.default_url().clone());
        };
        let mut url = Url::parse(candidate).ok()?;
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        // Dot segments are resolved by the parser, but encoded ones, encoded separators, and
        // anything encoded twice would be resolved by a frontend's router after the prefix
        // check: outside the prefix.
        let path = url.path().to_ascii_lowercase();
        if ["%2e", "%2f", "%5c", "%25"]
            .iter()
            .any(|encoded| path.contains(encoded))
        {
            return None;
        }
        url.set_fragment(None);
        self.allowed
            .iter()
            .any(|allowed| {
                allowed.origin() == url.origin() && path_under(url.path(), allowed.path())
            })
            .then_some(url)
    }
}

/// `path` is `prefix` or below it, segment-wise (`/app` allows `/app/x`, not `/application`).
fn path_under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A native app's nonce against the one in its ID token: equal, or the token holds its SHA-256 in
/// hex (what Sign in with Apple on iOS and most SDKs send to the provider). Compared in constant
/// time.
pub fn nonce_matches(in_token: &str, presented: &str) -> bool {
    let hashed = hex_sha256(presented);
    let raw_matches: bool = in_token.as_bytes().ct_eq(presented.as_bytes()).into();
    let hashed_matches: bool = in_token
        .to_ascii_lowercase()
        .as_bytes()
        .ct_eq(hashed.as_bytes())
        .into();
    !presented.is_empty() && (raw_matches || hashed_matches)
}

/// Longest provider subject kept (the store's limit; OpenID Connect says 255 ASCII characters).
pub const MAX_SUBJECT_CHARS: usize = 255;

/// A provider's subject (`sub`) authd can keep as an identity's key: 1 to 255 characters, none
/// of them a control character (PostgreSQL cannot store NUL, and no provider's ids hold one).
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.chars().any(char::is_control) {
        return Err("the subject holds a control character".into());
    }
    match subject.chars().count() {
        0 => Err("the identity has no subject".into()),
        n if n > MAX_SUBJECT_CHARS => Err(format!(
            "the subject is longer than {MAX_SUBJECT_CHARS} characters"
        )),
        _ => Ok(()),
    }
}

/// What marks an ID token as used: the hash of what its signature covers (header and claims), so
/// the other spellings of one signature (base64url's unused trailing bits, for one) are the same
/// token.
pub fn id_token_spend_key(id_token: &str) -> [u8; 32] {
    let signed = id_token
        .rsplit_once('.')
        .map_or(id_token, |(signed, _)| signed);
    Sha256::digest(signed.as_bytes()).into()
}

/// How far a provider's clock may run ahead of authd's.
pub const ID_TOKEN_SKEW_SECONDS: i64 = 300;
/// The longest an exchanged ID token may still have to live (Apple's live a day): it is
/// remembered as used until it expires, so one that claims to live for years is refused rather
/// than kept.
pub const ID_TOKEN_MAX_LIFETIME_SECONDS: i64 = 86_400;

/// An ID token's `iat` against `now` (Unix seconds): not in the future, beyond the skew.
pub fn check_issue_time(issued_at: i64, now: i64) -> Result<(), String> {
    if issued_at > now + ID_TOKEN_SKEW_SECONDS {
        return Err("the ID token is issued in the future".into());
    }
    Ok(())
}

/// An ID token a native app exchanges (remembered as used until its `exp`): expiring within a
/// day of `now`, give or take the skew.
pub fn check_remembered_lifetime(expires_at: i64, now: i64) -> Result<(), String> {
    if expires_at > now + ID_TOKEN_MAX_LIFETIME_SECONDS + ID_TOKEN_SKEW_SECONDS {
        return Err("the ID token lives longer than a day".into());
    }
    Ok(())
}

fn hex_sha256(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_to_255_characters() {
        assert!(check_subject("").is_err());
        assert!(check_subject("1").is_ok());
        assert!(check_subject(&"é".repeat(255)).is_ok());
        assert!(check_subject(&"x".repeat(256)).is_err());
        for control in ["x\0", "\0", "a\u{7f}b", "line\nbreak"] {
            assert!(check_subject(control).is_err(), "{control:?}");
        }
    }

    #[test]
    fn spellings_of_one_signature_are_one_token() {
        // The last base64url character of a 256-byte signature carries 4 unused bits.
        let a = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnQ";
        let b = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnR";
        assert_eq!(id_token_spend_key(a), id_token_spend_key(b));
        let other_claims = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIyIn0.c2lnQ";
        assert_ne!(id_token_spend_key(a), id_token_spend_key(other_claims));
    }

    #[test]
    fn token_times_allow_skew_and_a_day() {
        let now = 1_000_000;
        assert!(check_issue_time(now + 300, now).is_ok());
        assert!(check_issue_time(now + 301, now).is_err());
        // Apple's day-long tokens from a clock a little ahead.
        assert!(check_remembered_lifetime(now + 1 + 86_400, now).is_ok());
        assert!(check_remembered_lifetime(now + 86_400 + 300, now).is_ok());
        assert!(check_remembered_lifetime(now + 86_400 + 301, now).is_err());
    }

    fn facts() -> IdentityFacts {
        IdentityFacts {
            linked_to: None,
            has_email: true,
            email_verified: true,
            account_with_email: None,
            allow_signup: true,
        }
    }

    #[test]
    fn a_known_identity_signs_in_its_account_whatever_the_address_says() {
        let owner = Uuid::new_v4();
        let other = Uuid::new_v4();
        let decision = decide(IdentityFacts {
            linked_to: Some(owner),
            account_with_email: Some(other),
            email_verified: false,
            ..facts()
        });
        assert_eq!(decision, IdentityDecision::SignIn(owner));
    }

    #[test]
    fn an_address_held_by_an_account_is_never_linked_silently() {
        let account = Uuid::new_v4();
        let verified = IdentityFacts {
            account_with_email: Some(account),
            ..facts()
        };
        assert_eq!(decide(verified), IdentityDecision::LinkRequired(account));
        let unverified = IdentityFacts {
            email_verified: false,
            ..verified
        };
        assert_eq!(
            decide(unverified),
            IdentityDecision::Refuse(IdentityRefusal::UnverifiedEmailTaken)
        );
    }

    #[test]
    fn a_new_address_gets_an_account_only_while_signup_is_open() {
        assert_eq!(decide(facts()), IdentityDecision::CreateAccount);
        let closed = IdentityFacts {
            allow_signup: false,
            ..facts()
        };
        assert_eq!(
            decide(closed),
            IdentityDecision::Refuse(IdentityRefusal::SignupClosed)
        );
        let no_email = IdentityFacts {
            has_email: false,
            ..facts()
        };
        assert_eq!(
            decide(no_email),
            IdentityDecision::Refuse(IdentityRefusal::NoEmail)
        );
    }

    #[test]
    fn return_urls_stay_on_allowed_origins_and_paths() {
        let urls = ReturnUrls::parse(&[
            "https://app.example.com".into(),
            "http://localhost:5173/admin".into(),
        ])
        .unwrap();
        assert_eq!(
            urls.check(None).unwrap().as_str(),
            "https://app.example.com/"
        );
        for allowed in [
            "https://app.example.com/",
            "https://app.example.com/settings?tab=1",
            "http://localhost:5173/admin",
            "http://localhost:5173/admin/users",
        ] {
            assert!(urls.check(Some(allowed)).is_some(), "{allowed}");
        }
        let without_fragment = urls
            .check(Some("https://app.example.com/page#old"))
            .unwrap();
        assert_eq!(without_fragment.as_str(), "https://app.example.com/page");
        for refused in [
            "https://evil.example.com/",
            "https://app.example.com.evil.com/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "//evil.example.com",
            "/relative",
            "javascript:alert(1)",
            "https://user@app.example.com/",
            "http://localhost:5173/administrator",
            "http://localhost:5173/",
            "https://evil.example.com\\@app.example.com/",
            "http://localhost:5173/admin/..%2fsecret",
            "http://localhost:5173/admin/%2E%2E/secret",
            "http://localhost:5173/admin/..%5Csecret",
            "http://localhost:5173/admin/%252e%252e%252fsecret",
        ] {
            assert!(urls.check(Some(refused)).is_none(), "{refused}");
        }
    }

    #[test]
    fn return_url_entries_must_be_plain_origins_with_paths() {
        assert!(ReturnUrls::parse(&[]).is_err());
        assert!(ReturnUrls::parse(&["app.example.com".into()]).is_err());
        assert!(ReturnUrls::parse(&["ftp://app.example.com".into()]).is_err());
        assert!(ReturnUrls::parse(&["https://app.example.com/?a=1".into()]).is_err());
    }

    #[test]
    fn a_nonce_matches_raw_or_as_its_sha256() {
        let nonce = "n-0S6_WzA2Mj";
        assert!(nonce_matches(nonce, nonce));
        assert!(nonce_matches(&hex_sha256(nonce), nonce));
        assert!(nonce_matches(&hex_sha256(nonce).to_uppercase(), nonce));
        assert!(!nonce_matches(nonce, "other"));
        assert!(!nonce_matches("", ""));
    }
}
