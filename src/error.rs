//! The one error type of the service layer. `http::error` maps it to a status and a stable `code`,
//! in one place; the store and cache errors convert into it here.

use std::time::Duration;

use serde::Serialize;

use crate::cache::CacheError;
use crate::store::StoreError;

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Values of the draft-7 `RateLimit-Policy` and `RateLimit` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub policy: String,
    pub state: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 `validation_failed`
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    /// 401 `invalid_credentials`: the same for an unknown email and a wrong password.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// 401 `unauthorized`: no bearer token where one is required.
    #[error("authentication required")]
    Unauthorized,
    /// 401 `token_expired`
    #[error("the token has expired")]
    TokenExpired,
    /// 401 `token_invalid`: malformed, wrong signature/algorithm/issuer/audience, revoked.
    #[error("the token is invalid")]
    TokenInvalid,
    /// 401 `refresh_token_reused`: a retired refresh token was presented; its session is revoked.
    #[error("refresh token reuse detected; the session has been revoked")]
    RefreshTokenReused,
    /// 400 `token_invalid`: an emailed one-time token that is unknown, used or expired. 400, not
    /// 401, so that a frontend's "refresh on 401" logic does not fire on a stale link.
    #[error("this link is invalid or has expired")]
    OneTimeTokenInvalid,
    /// 403 `email_not_verified`: right password, but the email must be verified first.
    #[error("the email address is not verified yet")]
    EmailNotVerified,
    /// 403 `account_locked`: an administrator locked the account (a login gets it whatever the
    /// password, so a guess is never confirmed).
    #[error("this account is locked")]
    AccountLocked,
    /// 403 `reauthentication_required`: a sensitive action, and the session has not proved
    /// itself recently enough (or only with one factor where the account has two): step up with
    /// `POST /auth/reauthenticate`, then retry with the new access token.
    #[error("this action needs a recent sign-in; re-authenticate and retry")]
    ReauthenticationRequired,
    /// 403 `mfa_enrollment_required`: `auth.mfa.required` covers this account and the session is
    /// below level 2: enrol a factor under `/me/mfa` (or step up with one already enrolled), then
    /// retry with the new access token.
    #[error("this account needs a second factor; set one up first")]
    MfaEnrollmentRequired,
    /// 401 `mfa_token_invalid`: the second step of a login is unknown, expired, used or out of
    /// attempts: sign in again.
    #[error("this sign-in has expired; sign in again")]
    MfaTokenInvalid,
    /// 401 `invalid_mfa_code`: a wrong, malformed or already used second-factor code.
    #[error("invalid verification code")]
    InvalidMfaCode,
    /// 409 `mfa_already_enabled`: the account already has this factor.
    #[error("two-step verification is already on")]
    MfaAlreadyEnabled,
    /// 403 `forbidden`: authenticated, but not allowed (not an admin).
    #[error("forbidden")]
    Forbidden,
    /// 403 `origin_not_allowed`: a browser says another site sent the request, and it names no
    /// origin CORS could judge.
    #[error("this origin is not allowed to call the API")]
    CrossSite,
    /// 404 `not_found`
    #[error("not found")]
    NotFound,
    /// 404 `feature_disabled`: the route exists, and its feature is off in this deployment.
    #[error("this feature is not enabled")]
    FeatureDisabled,
    /// 405 `method_not_allowed`: the path exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408 `request_timeout`: the body did not arrive in time (`server.client_body_timeout_ms`).
    #[error("the request body took too long to arrive")]
    RequestTimeout,
    /// 409 `email_taken`
    #[error("this email is already registered")]
    EmailTaken,
    /// 409 `last_admin`: demoting, locking or deleting this account would leave no admin.
    #[error("the last admin cannot be demoted, locked or deleted: make another admin first")]
    LastAdmin,
    /// 409 `endpoint_configured`: the webhook endpoint comes from `webhooks.endpoints`; remove it
    /// there (it would come back at the next start).
    #[error("this webhook endpoint is configured; remove it from webhooks.endpoints")]
    EndpointConfigured,
    /// 409 `delivery_not_dead`: only a dead webhook delivery can be retried (a pending one is
    /// queued already, a sent one was delivered).
    #[error("only a dead delivery can be retried")]
    DeliveryNotDead,
    /// 413 `payload_too_large`
    #[error("the request body is too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    /// 415 `unsupported_media_type`
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// 431 `headers_too_large`: the URI and headers exceed `http.max_header_bytes`.
    #[error("the request headers are too large (limit {limit} bytes)")]
    HeadersTooLarge { limit: usize },
    /// 429 `rate_limited`
    #[error("too many requests")]
    RateLimited {
        retry_after: Duration,
        headers: RateLimitHeaders,
    },
    /// 429 `rate_limited`: too many failed logins for this account (or unknown email) in a row.
    #[error("too many failed attempts; retry later")]
    LoginThrottled { retry_after: Duration },
    /// 503 `overloaded`: the hashing pool's queue is full.
    #[error("the server is busy; retry shortly")]
    Overloaded { retry_after: Duration },
    /// 503 `unavailable`: the store or the cache cannot be reached.
    #[error("a backing service is unavailable; retry shortly")]
    Unavailable(String),
    /// 503 `not_ready`: readiness failed; `details` names the components.
    #[error("not ready")]
    NotReady(Vec<FieldError>),
    /// Signing in through another provider failed; the status and code are the failure's.
    #[error("{}", .0.message())]
    Federation(FederationFailure),
    /// 500 `internal`: the cause goes to the log, never to the client.
    #[error("internal error")]
    Internal(String),
}

/// Why a sign-in through another provider (or a change to the linked identities) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FederationFailure {
    /// 400 `oauth_state_invalid`: the callback's state is unknown, used, expired, or was started
    /// in another browser or for another provider.
    StateInvalid,
    /// 400 `oauth_cancelled`: the user (or the provider) turned the sign-in down.
    Cancelled,
    /// 401 `oauth_failed`: what the provider sent does not check out (a refused code; an ID token
    /// with the wrong issuer, audience, nonce, signature or lifetime; one used before).
    Refused,
    /// 502 `provider_unavailable`: the provider could not be reached or answered nonsense.
    ProviderUnavailable,
    /// 400 `identity_email_missing`: the provider gave no address to make an account with.
    NoEmail,
    /// 409 `identity_email_unverified`: an account holds the address the provider gave, and the
    /// provider has not verified it: no link is offered.
    UnverifiedEmailTaken,
    /// 403 `signup_disabled`: new accounts through providers are off (`oauth.allow_signup`).
    SignupClosed,
    /// 409 `identity_taken`: the identity is linked to another account, or this account has one at
    /// that provider already.
    IdentityTaken,
    /// 409 `last_sign_in_method`: unlinking would leave the account no way to sign in.
    LastWayIn,
}

impl FederationFailure {
    pub fn code(self) -> &'static str {
        match self {
            FederationFailure::StateInvalid => "oauth_state_invalid",
            FederationFailure::Cancelled => "oauth_cancelled",
            FederationFailure::Refused => "oauth_failed",
            FederationFailure::ProviderUnavailable => "provider_unavailable",
            FederationFailure::NoEmail => "identity_email_missing",
            FederationFailure::UnverifiedEmailTaken => "identity_email_unverified",
            FederationFailure::SignupClosed => "signup_disabled",
            FederationFailure::IdentityTaken => "identity_taken",
            FederationFailure::LastWayIn => "last_sign_in_method",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            FederationFailure::StateInvalid
            | FederationFailure::Cancelled
            | FederationFailure::NoEmail => 400,
            FederationFailure::Refused => 401,
            FederationFailure::SignupClosed => 403,
            FederationFailure::UnverifiedEmailTaken
            | FederationFailure::IdentityTaken
            | FederationFailure::LastWayIn => 409,
            FederationFailure::ProviderUnavailable => 502,
        }
    }

    fn message(self) -> &'static str {
        match self {
            FederationFailure::StateInvalid => {
                "this sign-in has expired or is not yours; start again"
            }
            FederationFailure::Cancelled => "the sign-in was cancelled at the provider",
            FederationFailure::Refused => "the provider's answer could not be verified",
            FederationFailure::ProviderUnavailable => "the provider cannot be reached; retry later",
            FederationFailure::NoEmail => "the provider gave no email address",
            FederationFailure::UnverifiedEmailTaken => {
                "an account uses this address; sign in to it and link the provider from there"
            }
            FederationFailure::SignupClosed => "new accounts cannot be made this way",
            FederationFailure::IdentityTaken => "this identity is linked to another account",
            FederationFailure::LastWayIn => "this is the account's last way to sign in",
        }
    }
}

impl AppError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        AppError::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => AppError::EmailTaken,
            StoreError::LastAdmin => AppError::LastAdmin,
            StoreError::LastWayIn => AppError::Federation(FederationFailure::LastWayIn),
            // As if the request had come a moment later, after the ending.
            StoreError::SessionEnded => AppError::TokenInvalid,
            StoreError::Unavailable(cause) => {
                crate::metrics::backend_error("store", "unavailable");
                AppError::Unavailable(cause)
            }
            StoreError::Backend(cause) => {
                crate::metrics::backend_error("store", "backend");
                AppError::Internal(cause)
            }
        }
    }
}

impl From<CacheError> for AppError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Unavailable(cause) => AppError::Unavailable(cause),
        }
    }
}

impl From<actix::MailboxError> for AppError {
    fn from(e: actix::MailboxError) -> Self {
        AppError::Internal(format!("actor mailbox: {e}"))
    }
}
