//! Extractors: the caller's identity, the client context, and JSON bodies with the contract's
//! errors (415, 413, 400 with details).

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use serde::de::DeserializeOwned;

use super::client_ip::client_ip;
use super::middleware::RequestId;
use super::AppState;
use crate::domain::claims::{AccessClaims, Caller};
use crate::domain::client::ClientContext;
use crate::domain::user::User;
use crate::error::{AppError, FieldError};
use crate::flows::admin::AdminService;

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal("application state is not configured".into()))
}

/// The bearer token of the `Authorization` header, if it has one.
fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The caller behind the request's access token, whatever its level: a valid token of a live
/// session, and the account behind it. Otherwise 401.
fn live_caller(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Caller, AppError>> {
    let token = bearer_token(req);
    let state = state(req);
    Box::pin(async move {
        let token = token.ok_or(AppError::Unauthorized)?;
        state?.auth.verify_access(token).await
    })
}

/// An authenticated caller (see [`live_caller`]) whom `auth.mfa.required` lets through: a
/// covered account's session below level 2 gets 403 `mfa_enrollment_required`. The default for
/// every endpoint, so one added later is held to the requirement without anyone remembering it.
pub struct AuthUser(pub Caller);

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let requirement = state(req).map(|state| state.mfa_requirement);
        let caller = live_caller(req);
        Box::pin(async move {
            let caller = caller.await?;
            if requirement?.restricts(caller.user.role, caller.claims.aal) {
                crate::metrics::mfa_outcome("requirement", "enrollment_required");
                return Err(AppError::MfaEnrollmentRequired);
            }
            Ok(AuthUser(caller))
        })
    }
}

/// An authenticated caller, also one that `auth.mfa.required` holds back: only for what such a
/// session must still be able to do (see itself, enrol or give a factor, sign out).
pub struct EnrollingUser(pub Caller);

impl FromRequest for EnrollingUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = live_caller(req);
        Box::pin(async move { Ok(EnrollingUser(caller.await?)) })
    }
}

/// An authenticated caller who is, per the store right now, an unlocked admin. Otherwise 401/403
/// (also 403 `reauthentication_required` for a change, when `auth.admin_reauthentication`).
pub struct AdminUser(pub User);

impl FromRequest for AdminUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let changes_something = req.method() != actix_web::http::Method::GET;
        let state = state(req);
        let caller = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let AuthUser(caller) = caller.await?;
            let claims = caller.claims.clone();
            let admin = AdminService::require_admin(caller)?;
            if changes_something {
                state?.admin.require_step_up(&claims).await?;
            }
            Ok(AdminUser(admin))
        })
    }
}

/// A caller who may be authenticated: `None` when there is no valid access token. For endpoints
/// where a stale token must not be an error (logout).
pub struct MaybeAuthUser(pub Option<AccessClaims>);

impl FromRequest for MaybeAuthUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = live_caller(req);
        Box::pin(async move {
            match caller.await {
                Ok(caller) => Ok(MaybeAuthUser(Some(caller.claims))),
                // No token, or one that no longer opens a session: anonymous, not an error.
                Err(AppError::Unauthorized | AppError::TokenExpired | AppError::TokenInvalid) => {
                    Ok(MaybeAuthUser(None))
                }
                Err(other) => Err(other),
            }
        })
    }
}

/// Where the request came from, for the session record.
pub struct Client(pub ClientContext);

impl FromRequest for Client {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user_agent = req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let request_id = req.extensions().get::<RequestId>().map(|id| id.0.clone());
        ready(Ok(Client(ClientContext {
            ip: Some(client_ip(req)),
            user_agent,
            request_id,
        })))
    }
}

/// A JSON body. An empty body reads as `{}` (so optional bodies need no content type and
/// missing fields are reported as such); a non-empty one must be `application/json`. Behind an
/// authentication extractor (`AuthUser`, `EnrollingUser`, `AdminUser`), take it as a `Result`
/// like [`QueryParams`], so a caller who may not use the route gets the 401/403 first.
pub struct JsonBody<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json_type = is_json(req);
        // The read itself is bounded by the app's `PayloadConfig`, set to the same limit, and in
        // time: a body that trickles in (slowloris) gets 408 and the connection is closed.
        let (limit, timeout) = state(req)
            .map(|s| (s.max_body_bytes, s.body_timeout))
            .unwrap_or((0, std::time::Duration::from_secs(10)));
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = actix_web::rt::time::timeout(timeout, body)
                .await
                .map_err(|_| AppError::RequestTimeout)?;
            let bytes = body.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge { limit }
                } else {
                    AppError::validation("body", "the request body could not be read")
                }
            })?;
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            let text: &[u8] = match first {
                None => b"{}",
                Some(_) if !json_type => return Err(AppError::UnsupportedMediaType),
                // Every body of the API is an object: serde would also take a struct from an
                // array (`[null, null]`) and an optional body from `null`.
                Some(b'{') => &bytes,
                Some(_) => {
                    return Err(AppError::validation("body", "must be a JSON object"));
                }
            };
            let mut deserializer = serde_json::Deserializer::from_slice(text);
            let value = serde_path_to_error::deserialize(&mut deserializer)
                .map_err(|e| AppError::Validation(vec![json_problem(&e)]))?;
            // Nothing but whitespace may follow the object.
            deserializer
                .end()
                .map_err(|e| AppError::validation("body", e.to_string()))?;
            Ok(JsonBody(value))
        })
    }
}

/// The query string, read as actix's `web::Query` reads it, but a parameter that does not parse
/// (or is unknown, where the struct denies unknown fields) is named in the error (`limit`,
/// `userId`) rather than the query as a whole.
///
/// Behind an authentication extractor, take it as `Result<QueryParams<T>, AppError>` and apply
/// `?` in the handler: actix extracts the arguments together and the first error wins, and this
/// one is ready at once while the caller's check waits for the store, so a caller who may not
/// use the route would otherwise get the 400 instead of the 401/403.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequest for QueryParams<T> {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs = form_urlencoded::parse(req.query_string().as_bytes());
        let parsed = serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs));
        ready(parsed.map(QueryParams).map_err(|e| {
            let path = e.path().to_string();
            // A problem with no one parameter to blame (a missing one) names the query.
            let field = if path.is_empty() || path == "." {
                "query".to_string()
            } else {
                path
            };
            AppError::Validation(vec![FieldError::new(field, plain(&e.inner().to_string()))])
        }))
    }
}

/// A query value's parse error in a frontend's words rather than Rust's (`invalid digit found in
/// string`, `UUID parsing failed: ...`); any other message is kept.
fn plain(message: &str) -> String {
    const NUMBER: [&str; 3] = [
        "invalid digit found in string",
        "number too large to fit in target type",
        "cannot parse integer from empty string",
    ];
    if NUMBER.iter().any(|m| message.contains(m)) {
        "must be a whole number in range".to_string()
    } else if message.contains("UUID parsing failed") {
        "must be a UUID".to_string()
    } else {
        message.to_string()
    }
}

/// The path's parameters, read as actix's `web::Path` reads them, but a value that does not parse
/// (`/admin/users/not-a-uuid`) is a 400 naming the parameter rather than actix's 404: the route
/// is there, the value is wrong. Every fallible parameter of authd's routes is an id (a UUID).
/// Behind an authentication extractor, take it as a `Result` like [`QueryParams`].
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned> FromRequest for PathParams<T> {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = web::Path::<T>::extract(req).into_inner();
        ready(
            parsed
                .map(|path| PathParams(path.into_inner()))
                .map_err(|_| {
                    let problem = req
                        .match_info()
                        .iter()
                        .find(|(_, value)| uuid::Uuid::parse_str(value).is_err())
                        .map_or_else(
                            || FieldError::new("path", "is not valid here"),
                            |(name, _)| FieldError::new(name, "must be a UUID"),
                        );
                    AppError::Validation(vec![problem])
                }),
        )
    }
}

/// A JSON body that did not deserialise, as a problem with the field it is about (`email`,
/// `metadata.plan`), or with `body` when no field is to blame (malformed JSON, an unknown field).
fn json_problem(e: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = e.path().to_string();
    let inner = e.inner();
    let message = inner.to_string();
    // serde_json appends where it stopped reading; the field name says more to a frontend.
    let message = match message.rsplit_once(" at line ") {
        Some((head, _)) if inner.line() > 0 => head.to_string(),
        _ => message,
    };
    // A key given twice is about that key (serde names it only in the message).
    let duplicated = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(key, _)| key.to_string());
    let field = match duplicated {
        Some(key) if path.is_empty() || path == "." => key,
        Some(key) => format!("{path}.{key}"),
        None if path.is_empty() || path == "." || inner.is_syntax() || inner.is_eof() => {
            "body".to_string()
        }
        None => path,
    };
    FieldError::new(field, message)
}
