//! The one mapping from errors to HTTP: status, stable `code`, headers. Bodies are rendered by the
//! request-context middleware, which knows the request id, so every error (ours, the framework's
//! 404/405/413, CORS refusals) leaves with the same shape.

use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::error::{AppError, FieldError};

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The one error shape of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ApiError)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody<'a> {
    /// A human-readable message; never internals.
    pub error: &'a str,
    /// Stable machine code: `validation_failed`, `invalid_credentials`, `unauthorized`,
    /// `token_expired`, `token_invalid`, `email_not_verified`, `refresh_token_reused`,
    /// `account_locked`, `forbidden`, `reauthentication_required`, `mfa_enrollment_required`,
    /// `mfa_token_invalid`, `invalid_mfa_code`, `mfa_already_enabled`, `not_found`, `method_not_allowed`, `email_taken`,
    /// `payload_too_large`, `unsupported_media_type`, `headers_too_large`, `request_timeout`,
    /// `bad_request`, `origin_not_allowed`, `cors_method_not_allowed`, `cors_header_not_allowed`,
    /// `rate_limited`, `overloaded`, `unavailable`,
    /// `not_ready`, `internal`, `feature_disabled`; signing in through a provider: `oauth_state_invalid`,
    /// `oauth_cancelled`, `oauth_failed`, `provider_unavailable`, `identity_email_missing`,
    /// `identity_email_unverified`, `signup_disabled`, `identity_taken`, `last_sign_in_method`;
    /// webhooks: `endpoint_configured`, `delivery_not_dead`; `error` for any other status the
    /// framework answers.
    #[schema(example = "invalid_credentials")]
    pub code: &'a str,
    /// The HTTP status, repeated.
    pub status_code: u16,
    /// The `X-Request-Id` of the answer: quote it when reporting a problem.
    pub request_id: &'a str,
    /// RFC 3339, milliseconds, UTC.
    pub timestamp: String,
    /// Per-field problems (`validation_failed`, `not_ready`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<FieldError>, required = false)]
    pub details: Option<&'a [FieldError]>,
}

impl<'a> ErrorBody<'a> {
    pub fn new(status: StatusCode, code: &'a str, error: &'a str, request_id: &'a str) -> Self {
        ErrorBody {
            error,
            code,
            status_code: status.as_u16(),
            request_id,
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            details: None,
        }
    }
}

impl AppError {
    /// The stable machine-readable code of the contract.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation(_) => "validation_failed",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Unauthorized => "unauthorized",
            AppError::TokenExpired => "token_expired",
            AppError::TokenInvalid | AppError::OneTimeTokenInvalid => "token_invalid",
            AppError::EmailNotVerified => "email_not_verified",
            AppError::RefreshTokenReused => "refresh_token_reused",
            AppError::AccountLocked => "account_locked",
            AppError::Forbidden => "forbidden",
            AppError::CrossSite => "origin_not_allowed",
            AppError::ReauthenticationRequired => "reauthentication_required",
            AppError::MfaEnrollmentRequired => "mfa_enrollment_required",
            AppError::MfaTokenInvalid => "mfa_token_invalid",
            AppError::InvalidMfaCode => "invalid_mfa_code",
            AppError::MfaAlreadyEnabled => "mfa_already_enabled",
            AppError::NotFound => "not_found",
            AppError::FeatureDisabled => "feature_disabled",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::RequestTimeout => "request_timeout",
            AppError::EmailTaken => "email_taken",
            AppError::LastAdmin => "last_admin",
            AppError::EndpointConfigured => "endpoint_configured",
            AppError::DeliveryNotDead => "delivery_not_dead",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::HeadersTooLarge { .. } => "headers_too_large",
            AppError::RateLimited { .. } | AppError::LoginThrottled { .. } => "rate_limited",
            AppError::Overloaded { .. } => "overloaded",
            AppError::Unavailable(_) => "unavailable",
            AppError::NotReady(_) => "not_ready",
            AppError::Federation(failure) => failure.code(),
            AppError::Internal(_) => "internal",
        }
    }

    pub fn details(&self) -> Option<&[FieldError]> {
        match self {
            AppError::Validation(details) | AppError::NotReady(details) => Some(details),
            _ => None,
        }
    }
}

/// Code and message for an error response the framework made (no `AppError` behind it).
pub fn framework_error(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "authentication required"),
        StatusCode::FORBIDDEN => ("forbidden", "forbidden"),
        StatusCode::NOT_FOUND => ("not_found", "not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        // Only the form-post callback reaches here (JSON bodies say so themselves).
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "this endpoint takes a form body (application/x-www-form-urlencoded)",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "the request headers are too large")
        }
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long to arrive"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("error", "the request failed"),
    }
}

fn retry_after(seconds: std::time::Duration) -> HeaderValue {
    let whole = seconds.as_secs() + u64::from(seconds.subsec_nanos() > 0);
    HeaderValue::from(whole.max(1))
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Validation(_) | AppError::OneTimeTokenInvalid => StatusCode::BAD_REQUEST,
            AppError::InvalidCredentials
            | AppError::Unauthorized
            | AppError::TokenExpired
            | AppError::TokenInvalid
            | AppError::RefreshTokenReused
            | AppError::MfaTokenInvalid
            | AppError::InvalidMfaCode => StatusCode::UNAUTHORIZED,
            AppError::AccountLocked
            | AppError::Forbidden
            | AppError::CrossSite
            | AppError::EmailNotVerified
            | AppError::ReauthenticationRequired
            | AppError::MfaEnrollmentRequired => StatusCode::FORBIDDEN,
            AppError::NotFound | AppError::FeatureDisabled => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::EmailTaken
            | AppError::MfaAlreadyEnabled
            | AppError::LastAdmin
            | AppError::EndpointConfigured
            | AppError::DeliveryNotDead => StatusCode::CONFLICT,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            AppError::RateLimited { .. } | AppError::LoginThrottled { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::Overloaded { .. } | AppError::Unavailable(_) | AppError::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Federation(failure) => {
                StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Status and headers only; the body is rendered by `request_context`.
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::new(self.status_code());
        let headers = response.headers_mut();
        match self {
            AppError::RateLimited {
                retry_after: wait,
                headers: limits,
            } => {
                headers.insert(RETRY_AFTER, retry_after(*wait));
                if let Ok(value) = HeaderValue::from_str(&limits.policy) {
                    headers.insert(RATELIMIT_POLICY, value);
                }
                if let Ok(value) = HeaderValue::from_str(&limits.state) {
                    headers.insert(RATELIMIT, value);
                }
            }
            AppError::Overloaded { retry_after: wait } => {
                headers.insert(RETRY_AFTER, retry_after(*wait));
            }
            // The account's own limit (a growing delay), not the per-IP one the middleware would
            // describe: one more attempt once the delay has passed.
            AppError::LoginThrottled { retry_after: wait } => {
                let seconds = retry_after(*wait);
                if let Ok(seconds) = seconds.to_str() {
                    let state = format!("limit=1, remaining=0, reset={seconds}");
                    if let Ok(value) = HeaderValue::from_str(&state) {
                        headers.insert(RATELIMIT, value);
                    }
                    if let Ok(value) = HeaderValue::from_str(&format!("1;w={seconds}")) {
                        headers.insert(RATELIMIT_POLICY, value);
                    }
                }
                headers.insert(RETRY_AFTER, seconds);
            }
            AppError::Unavailable(_) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The rest of the body may still be on its way: this connection is done.
            AppError::RequestTimeout => {
                response
                    .head_mut()
                    .set_connection_type(actix_web::http::ConnectionType::Close);
            }
            AppError::Unauthorized | AppError::TokenExpired | AppError::TokenInvalid => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
