//! The refresh-token cookie: HttpOnly, Secure (except in development), SameSite=Strict, scoped to
//! the auth routes so it never rides along with other requests.

use actix_web::cookie::time::Duration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::COOKIE;
use actix_web::HttpRequest;

use crate::domain::opaque_token::{OpaqueToken, RefreshToken};

pub const REFRESH_COOKIE: &str = "refresh_token";
pub const ONE_TIME_COOKIE: &str = "one_time_token";
/// Ties a provider's callback to the browser that started the sign-in.
pub const OAUTH_FLOW_COOKIE: &str = "oauth_flow";
/// Ties a link offer (`link_required`) to the browser the provider answered.
pub const OAUTH_LINK_COOKIE: &str = "oauth_link";

#[derive(Debug, Clone)]
pub struct CookiePolicy {
    pub secure: bool,
    pub path: String,
    pub max_age_seconds: i64,
}

impl CookiePolicy {
    fn base(&self, value: String) -> Cookie<'static> {
        self.named(REFRESH_COOKIE, value)
    }

    fn named(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build(name, value)
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .path(self.path.clone())
            .finish()
    }

    pub fn refresh(&self, token: &RefreshToken) -> Cookie<'static> {
        let mut cookie = self.base(token.as_str().to_string());
        cookie.set_max_age(Duration::seconds(self.max_age_seconds));
        cookie
    }

    pub fn cleared(&self) -> Cookie<'static> {
        let mut cookie = self.base(String::new());
        cookie.make_removal();
        cookie
    }

    /// The `one_time_token` cookie carrying a follow-up token.
    pub fn one_time(&self, token: &OpaqueToken) -> Cookie<'static> {
        let mut cookie = self.named(ONE_TIME_COOKIE, token.as_str().to_string());
        cookie.set_max_age(Duration::seconds(self.max_age_seconds));
        cookie
    }

    /// The `oauth_flow` cookie of a round trip to a provider. It must come back with the
    /// provider's callback, a cross-site navigation (Apple's a cross-site POST): SameSite=None
    /// where it can be Secure, else Lax (development over plain HTTP, where None is refused).
    pub fn oauth_flow(&self, key: &str, max_age_seconds: i64) -> Cookie<'static> {
        let mut cookie = self.named(OAUTH_FLOW_COOKIE, key.to_string());
        cookie.set_same_site(if self.secure {
            SameSite::None
        } else {
            SameSite::Lax
        });
        cookie.set_max_age(Duration::seconds(max_age_seconds));
        cookie
    }

    /// The `oauth_link` cookie: the round trip's browser key, kept (SameSite=Strict, for
    /// `POST /me/identities` only) while the offer of a link waits for the account to sign in.
    pub fn oauth_link(&self, key: &str, max_age_seconds: i64) -> Cookie<'static> {
        let mut cookie = self.named(OAUTH_LINK_COOKIE, key.to_string());
        cookie.set_max_age(Duration::seconds(max_age_seconds));
        cookie
    }

    pub fn oauth_link_cleared(&self) -> Cookie<'static> {
        let mut cookie = self.oauth_link("", 0);
        cookie.make_removal();
        cookie
    }

    pub fn oauth_flow_cleared(&self) -> Cookie<'static> {
        let mut cookie = self.oauth_flow("", 0);
        cookie.make_removal();
        cookie
    }

    pub fn one_time_cleared(&self) -> Cookie<'static> {
        let mut cookie = self.named(ONE_TIME_COOKIE, String::new());
        cookie.make_removal();
        cookie
    }
}

/// The value of the request's cookie `name` (the first, as browsers send the most specific
/// first), read from the raw `Cookie` headers. actix's own `HttpRequest::cookie` gives up on every
/// cookie when any byte of the header is not UTF-8, so a stray cookie of another app on the same
/// site would hide ours; here the other pairs do not matter, whatever their bytes.
pub fn request_cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .flat_map(|header| header.as_bytes().split(|b| *b == b';'))
        .find_map(|pair| {
            let at = pair.iter().position(|b| *b == b'=')?;
            let (key, value) = (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii());
            if key != name.as_bytes() {
                return None;
            }
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            std::str::from_utf8(value).ok().map(str::to_string)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_cookie_has_the_contract_flags() {
        let policy = CookiePolicy {
            secure: true,
            path: "/api/auth".into(),
            max_age_seconds: 604800,
        };
        let text = policy.refresh(&RefreshToken::generate()).to_string();
        for part in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/api/auth",
            "Max-Age=604800",
        ] {
            assert!(text.contains(part), "{part} missing in {text}");
        }
        let cleared = policy.cleared().to_string();
        assert!(cleared.starts_with("refresh_token=;"), "{cleared}");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }
}
