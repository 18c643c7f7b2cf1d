//! `/auth/*`: parse, call the flow, shape the answer.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{MessageBody, UserBody};
use crate::actors::tokens::{AccessToken, IssuedTokens};
use crate::domain::claims::Caller;
use crate::domain::user::User;
use crate::error::AppError;
use crate::flows::auth::{Invitation, LoginInput, LoginOutcome, SignupInput, SignupOutcome};
use crate::flows::mfa::MfaChallengeIssued;
use crate::http::cookies::{request_cookie, ONE_TIME_COOKIE, REFRESH_COOKIE};
use crate::http::error::ErrorBody;
use crate::http::extractors::{Client, EnrollingUser, JsonBody, MaybeAuthUser};
use crate::http::AppState;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenTransport {
    /// The refresh token rides only in the HttpOnly cookie (browsers).
    #[default]
    Cookie,
    /// Also in the JSON body, for clients without a cookie jar (mobile, servers).
    Body,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SignupRequest {
    #[schema(required = true, format = Email, max_length = 254, example = "ada@example.com")]
    email: String,
    /// 8 to 128 characters after NFKC normalisation, and not guessable (zxcvbn score at least
    /// `auth.password_min_score`): a weak password is answered 400 with the reason.
    #[schema(required = true, min_length = 8, max_length = 128)]
    password: String,
    /// Display name: at most 200 characters, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    name: Option<String>,
    invitation_token: Option<String>,
    token_transport: TokenTransport,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct LoginRequest {
    #[schema(required = true, format = Email, max_length = 254, example = "ada@example.com")]
    email: String,
    #[schema(required = true, min_length = 1, max_length = 1024)]
    password: String,
    token_transport: TokenTransport,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RefreshRequest {
    refresh_token: Option<String>,
    token_transport: TokenTransport,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenBody {
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Only with `tokenTransport: body`; browsers get it in the HttpOnly cookie alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// A new session: the user and its tokens (login, signup, a login's second step, passkey
/// sign-in).
#[derive(Serialize, ToSchema)]
pub struct SignedInBody {
    user: UserBody,
    #[serde(flatten)]
    tokens: TokenBody,
}

/// `POST /auth/signup` answers with tokens, or (verification required) with the user and a message.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignupResponse {
    SignedIn(SignedInBody),
    VerificationSent(VerificationBody),
}

#[derive(Serialize, ToSchema)]
pub struct VerificationBody {
    user: UserBody,
    message: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutAllBody {
    message: &'static str,
    revoked_sessions: usize,
}

/// `POST /auth/login` answers with tokens, or (the account has a second factor) with the
/// second step to take.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    SignedIn(SignedInBody),
    MfaRequired(MfaRequiredBody),
}

/// The password was right; no session yet. `POST /auth/mfa/verify` with `mfaToken` and a code
/// completes the login.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaRequiredBody {
    /// Always `true`.
    mfa_required: bool,
    /// Single-use, valid `expiresIn` seconds and for a few attempts.
    mfa_token: String,
    /// What the second step accepts for this account: `totp`, `passkey`, `recovery_code`.
    methods: Vec<&'static str>,
    expires_in: u64,
}

impl From<MfaChallengeIssued> for MfaRequiredBody {
    fn from(challenge: MfaChallengeIssued) -> Self {
        MfaRequiredBody {
            mfa_required: true,
            mfa_token: challenge.mfa_token,
            methods: challenge.methods,
            expires_in: challenge.expires_in,
        }
    }
}

/// An access token on its own (re-authentication, enrolment): the refresh token is unchanged.
pub(super) fn access_body(access: AccessToken) -> TokenBody {
    TokenBody {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_token: None,
    }
}

pub(super) fn token_response(
    mut builder: actix_web::HttpResponseBuilder,
    state: &AppState,
    user: Option<&User>,
    tokens: IssuedTokens,
    transport: TokenTransport,
) -> HttpResponse {
    builder.cookie(state.cookies.refresh(&tokens.refresh_token));
    let body = TokenBody {
        access_token: tokens.access_token,
        token_type: "Bearer",
        expires_in: tokens.expires_in,
        refresh_token: (transport == TokenTransport::Body)
            .then(|| tokens.refresh_token.as_str().to_string()),
    };
    match user {
        Some(user) => builder.json(SignedInBody {
            user: UserBody::from(user),
            tokens: body,
        }),
        None => builder.json(body),
    }
}

/// The refresh token from the body when given there, else from the cookie.
fn presented_refresh(req: &HttpRequest, body: Option<String>) -> Option<String> {
    body.filter(|t| !t.is_empty())
        .or_else(|| request_cookie(req, REFRESH_COOKIE))
        .filter(|t| !t.is_empty())
}

/// Create an account
#[utoipa::path(
    tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Signed up. Signed in (tokens; refresh cookie set) unless `auth.require_email_verification` is on, then a verification mail is sent", body = SignupResponse,
            headers(("Set-Cookie" = String, description = "`refresh_token`: HttpOnly, SameSite=Strict, Path=/auth"))),
        (status = 400, description = "`validation_failed` (weak or short password, bad email) or `token_invalid` (invitation)", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
    )
)]
#[post("/signup")]
pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<SignupRequest>,
) -> Result<HttpResponse, AppError> {
    let invitation = match body.invitation_token.filter(|t| !t.is_empty()) {
        Some(token) => Some(Invitation::Presented(token)),
        None => request_cookie(&req, ONE_TIME_COOKIE).map(Invitation::Cookie),
    };
    let input = SignupInput {
        email: body.email,
        password: body.password,
        name: body.name,
        invitation,
    };
    match state.auth.signup(input, &client).await? {
        SignupOutcome::SignedIn(user, tokens) => Ok(token_response(
            HttpResponse::Created(),
            &state,
            Some(&user),
            tokens,
            body.token_transport,
        )),
        SignupOutcome::VerificationSent(user) => {
            Ok(HttpResponse::Created().json(VerificationBody {
                user: UserBody::from(&user),
                message: "check your email to verify your address, then sign in",
            }))
        }
    }
}

/// Sign in with email and password
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in (refresh cookie set); or, when the account has a second factor, `mfaRequired` and no session until `POST /auth/mfa/verify`", body = LoginResponse,
            headers(("Set-Cookie" = String, description = "`refresh_token`: HttpOnly, SameSite=Strict, Path=/auth"))),
        (status = 401, description = "`invalid_credentials`: the same answer for an unknown email and a wrong password", body = ErrorBody),
        (status = 403, description = "`account_locked` (by an admin; whatever the password, or 401 where signup hides addresses) or `email_not_verified` (right password)", body = ErrorBody),
    )
)]
#[post("/login")]
pub async fn login(
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<HttpResponse, AppError> {
    let input = LoginInput {
        email: body.email,
        password: body.password,
    };
    let outcome = state.auth.login(input, &client).await?;
    Ok(login_response(&state, outcome, body.token_transport))
}

/// The answer to a first step that signs in, or asks for the second factor.
pub(super) fn login_response(
    state: &AppState,
    outcome: LoginOutcome,
    transport: TokenTransport,
) -> HttpResponse {
    match outcome {
        LoginOutcome::SignedIn(user, tokens) => {
            token_response(HttpResponse::Ok(), state, Some(&user), tokens, transport)
        }
        LoginOutcome::MfaRequired(challenge) => {
            HttpResponse::Ok().json(MfaRequiredBody::from(challenge))
        }
    }
}

/// Rotate the refresh token for a new access token
#[utoipa::path(
    tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional: browsers send nothing and the cookie is used"),
    security((), ("refresh_cookie" = [])),
    responses(
        (status = 200, description = "Rotated: a new access token and refresh token (cookie; body too with `tokenTransport: body` when the old one came in the body: a browser's request, with `Origin`, that sent the old one in the cookie is answered in the cookie only)", body = TokenBody,
            headers(("Set-Cookie" = String, description = "`refresh_token`: the new one; HttpOnly, SameSite=Strict, Path=/auth"))),
        (status = 401, description = "`unauthorized` (no token), `token_invalid`, `token_expired`, or `refresh_token_reused` (the whole session is revoked); the cookie is cleared", body = ErrorBody),
    )
)]
#[post("/refresh")]
pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    // A browser (its requests carry `Origin`) that sent the token in the HttpOnly cookie gets
    // the new one in the cookie only: a script on the page must not be able to trade it for one
    // it can read by asking for the body transport. Other clients get what they ask for.
    let from_cookie = body.refresh_token.as_deref().is_none_or(str::is_empty);
    let transport = if from_cookie && req.headers().contains_key(actix_web::http::header::ORIGIN) {
        TokenTransport::Cookie
    } else {
        body.token_transport
    };
    let presented = presented_refresh(&req, body.refresh_token).ok_or(AppError::Unauthorized)?;
    match state.auth.refresh(presented, &client).await {
        Ok(tokens) => Ok(token_response(
            HttpResponse::Ok(),
            &state,
            None,
            tokens,
            transport,
        )),
        // A dead refresh token is dropped from the browser so it stops being sent.
        Err(
            e @ (AppError::TokenInvalid | AppError::TokenExpired | AppError::RefreshTokenReused),
        ) => {
            let mut response = HttpResponse::from_error(e);
            response.add_cookie(&state.cookies.cleared()).ok();
            Ok(response)
        }
        Err(other) => Err(other),
    }
}

/// Sign out this session
#[utoipa::path(
    tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional"),
    security((), ("bearer" = []), ("refresh_cookie" = [])),
    responses(
        (status = 200, description = "The session is revoked (idempotent) and the cookie cleared", body = MessageBody,
            headers(("Set-Cookie" = String, description = "`refresh_token` cleared (expired)"))),
    )
)]
#[post("/logout")]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    MaybeAuthUser(claims): MaybeAuthUser,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let presented = presented_refresh(&req, body.refresh_token);
    state.auth.logout(presented, claims, &client).await?;
    Ok(HttpResponse::Ok()
        .cookie(state.cookies.cleared())
        .json(MessageBody {
            message: "logged out",
        }))
}

/// Sign out every session
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every session of the user is revoked", body = LogoutAllBody),
    )
)]
#[post("/logout-all")]
pub async fn logout_all(
    state: web::Data<AppState>,
    Client(client): Client,
    EnrollingUser(Caller { claims, .. }): EnrollingUser,
) -> Result<HttpResponse, AppError> {
    let revoked_sessions = state.auth.logout_all(claims, &client).await?;
    Ok(HttpResponse::Ok()
        .cookie(state.cookies.cleared())
        .json(LogoutAllBody {
            message: "all sessions revoked",
            revoked_sessions,
        }))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderValue, COOKIE};
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::opaque_token::RefreshToken;
    use crate::http::cookies::CookiePolicy;

    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn request(headers: &[Vec<u8>]) -> HttpRequest {
        let mut request = TestRequest::default();
        for bytes in headers {
            request = request.append_header((COOKIE, HeaderValue::from_bytes(bytes).unwrap()));
        }
        request.to_http_request()
    }

    /// Bytes a header value may hold: tab, visible ASCII, space, obs-text (not UTF-8 on its own).
    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(
                prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
                0..120
            ),
            "[ a-z_=;\"%]{0,60}".prop_map(String::into_bytes),
        ]
    }

    /// Another cookie of the site: any name but ours, any value, any bytes.
    fn other_cookie() -> impl Strategy<Value = Vec<u8>> {
        (
            "[a-zA-Z0-9_.-]{0,12}".prop_filter("not ours", |n| n != REFRESH_COOKIE),
            prop::collection::vec(
                prop_oneof![0x21u8..0x7f, 0x80u8..=0xff]
                    .prop_filter("not a separator", |b| *b != b';'),
                0..40,
            ),
            any::<bool>(),
        )
            .prop_map(|(name, value, with_equals)| {
                let mut pair = name.into_bytes();
                if with_equals {
                    pair.push(b'=');
                }
                pair.extend(value);
                pair
            })
    }

    proptest! {
        #![proptest_config(config())]

        /// Whatever the `Cookie` headers hold, reading them never panics; the body's token wins
        /// when it has one, and a token read from a cookie is never empty.
        #[test]
        fn any_cookie_header_is_read_without_panic(
            headers in prop::collection::vec(header_bytes(), 0..3),
            body in prop::option::of("[A-Za-z0-9_-]{0,50}"),
        ) {
            let req = request(&headers);
            let presented = presented_refresh(&req, body.clone());
            match body.filter(|b| !b.is_empty()) {
                Some(body) => prop_assert_eq!(presented, Some(body)),
                None => if let Some(token) = presented {
                    prop_assert!(!token.is_empty());
                    let found = headers.iter().any(|h| {
                        String::from_utf8_lossy(h).contains(REFRESH_COOKIE)
                    });
                    prop_assert!(found);
                },
            }
        }

        /// The refresh cookie is found among any other cookies of the site, whatever their bytes
        /// (not UTF-8, no `=`, empty names), in one header or several.
        #[test]
        fn the_refresh_cookie_is_found_among_any_others(
            token in any::<[u8; 32]>(),
            before in prop::collection::vec(other_cookie(), 0..4),
            after in prop::collection::vec(other_cookie(), 0..4),
            separate_headers in any::<bool>(),
        ) {
            let token = RefreshToken::parse(&base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token,
            ))
            .unwrap();
            let ours = format!("{REFRESH_COOKIE}={}", token.as_str()).into_bytes();
            let pairs: Vec<Vec<u8>> = before.into_iter().chain([ours]).chain(after).collect();
            let headers = if separate_headers {
                pairs
            } else {
                vec![pairs.join(&b"; "[..])]
            };
            let req = request(&headers);
            prop_assert_eq!(presented_refresh(&req, None), Some(token.as_str().to_string()));
        }

        /// What authd sets in `Set-Cookie` is what it reads back from `Cookie`.
        #[test]
        fn the_cookie_authd_sets_is_the_cookie_authd_reads(
            secure in any::<bool>(),
            path in "/[a-z]{0,8}/auth",
        ) {
            let policy = CookiePolicy { secure, path, max_age_seconds: 60 };
            let token = RefreshToken::generate();
            let set_cookie = policy.refresh(&token).to_string();
            let pair = set_cookie.split(';').next().unwrap().as_bytes().to_vec();
            let req = request(&[pair]);
            prop_assert_eq!(presented_refresh(&req, None), Some(token.as_str().to_string()));
        }
    }
}
