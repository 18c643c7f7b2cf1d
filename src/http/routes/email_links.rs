//! The emailed flows: verify, resend, forgot, reset, passwordless sign-in, the confirmation of a
//! new address, and the token exchange for a cookie.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{login_response, LoginResponse, TokenTransport};
use super::MessageBody;
use crate::domain::one_time::TokenKind;
use crate::error::AppError;
use crate::flows::email_links::EmailLoginProof;
use crate::http::cookies::{request_cookie, ONE_TIME_COOKIE};
use crate::http::error::ErrorBody;
use crate::http::extractors::{Client, JsonBody, MaybeAuthUser};
use crate::http::AppState;

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenRequest {
    /// The emailed token; absent when the `one_time_token` cookie carries it.
    token: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ValidateTokenRequest {
    /// The token from the emailed link.
    #[schema(required = true, min_length = 1)]
    token: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EmailRequest {
    #[schema(required = true, format = Email, max_length = 254, example = "ada@example.com")]
    email: String,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ResetRequest {
    /// The emailed token; absent when the `one_time_token` cookie carries it.
    token: Option<String>,
    /// The same rules as signup's password.
    #[schema(required = true, min_length = 8, max_length = 128)]
    new_password: String,
}

/// The emailed token from the body, else the follow-up token from the `one_time_token` cookie.
fn one_time_token(req: &HttpRequest, body: Option<String>) -> Result<String, AppError> {
    body.filter(|t| !t.is_empty())
        .or_else(|| request_cookie(req, ONE_TIME_COOKIE))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::validation(
                "token",
                "is required (in the body or the one_time_token cookie)",
            )
        })
}

fn accepted() -> HttpResponse {
    // The same answer whether or not the address has an account.
    HttpResponse::Accepted().json(MessageBody {
        message: "if the address has an account, a message is on its way",
    })
}

/// Verify the address with its mailed token
#[utoipa::path(
    tag = "email",
    request_body(content = Option<TokenRequest>, description = "Optional when the `one_time_token` cookie carries the token"),
    security((), ("one_time_cookie" = [])),
    responses(
        (status = 200, description = "The email is verified", body = MessageBody,
            headers(("Set-Cookie" = String, description = "`one_time_token` cleared, when it carried the token"))),
        (status = 400, description = "`token_invalid` (unknown, used or expired) or `validation_failed`", body = ErrorBody),
    )
)]
#[post("/email/verify")]
pub async fn verify_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    let token = one_time_token(&req, body.token)?;
    state.email_links.verify_email(&token, &client).await?;
    Ok(HttpResponse::Ok()
        .cookie(state.one_time_cookie.one_time_cleared())
        .json(MessageBody {
            message: "email verified",
        }))
}

/// Mail the verification link again
#[utoipa::path(
    tag = "email",
    request_body = EmailRequest,
    responses((status = 202, description = "The same answer whether or not the address has an account", body = MessageBody))
)]
#[post("/email/resend")]
pub async fn resend_verification(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<EmailRequest>,
) -> Result<HttpResponse, AppError> {
    state.email_links.resend_verification(&body.email).await?;
    Ok(accepted())
}

/// Mail a password-reset link
#[utoipa::path(
    tag = "password",
    request_body = EmailRequest,
    responses((status = 202, description = "The same answer whether or not the address has an account", body = MessageBody))
)]
#[post("/password/forgot")]
pub async fn forgot_password(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<EmailRequest>,
) -> Result<HttpResponse, AppError> {
    state.email_links.forgot_password(&body.email).await?;
    Ok(accepted())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetBody {
    message: &'static str,
    revoked_sessions: usize,
}

/// Set a new password with a reset token
#[utoipa::path(
    tag = "password",
    request_body = ResetRequest,
    security((), ("one_time_cookie" = [])),
    responses(
        (status = 200, description = "Reset; every session is signed out", body = ResetBody,
            headers(("Set-Cookie" = String, description = "`one_time_token` cleared, when it carried the token"))),
        (status = 400, description = "`token_invalid` or `validation_failed` (weak password)", body = ErrorBody),
    )
)]
#[post("/password/reset")]
pub async fn reset_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<ResetRequest>,
) -> Result<HttpResponse, AppError> {
    let token = one_time_token(&req, body.token)?;
    let revoked_sessions = state
        .email_links
        .reset_password(&token, &body.new_password, &client)
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(state.one_time_cookie.one_time_cleared())
        .json(ResetBody {
            message: "password reset; every session has been signed out",
            revoked_sessions,
        }))
}

/// The kinds of emailed token, as `POST /auth/tokens/validate` names them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenTypeBody {
    EmailVerification,
    PasswordReset,
    Invitation,
    EmailChange,
}

impl From<TokenKind> for TokenTypeBody {
    fn from(kind: TokenKind) -> Self {
        match kind {
            TokenKind::EmailVerification => TokenTypeBody::EmailVerification,
            TokenKind::PasswordReset => TokenTypeBody::PasswordReset,
            TokenKind::Invitation => TokenTypeBody::Invitation,
            TokenKind::EmailChange => TokenTypeBody::EmailChange,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatedBody {
    /// What the emailed token is for.
    token_type: TokenTypeBody,
    #[schema(value_type = Object)]
    metadata: Value,
}

/// Exchange a mailed token for a one-hour cookie
#[utoipa::path(
    tag = "email",
    request_body = ValidateTokenRequest,
    responses(
        (status = 200, description = "The emailed token is valid; a follow-up token is set in the `one_time_token` cookie (1 h)", body = ValidatedBody,
            headers(("Set-Cookie" = String, description = "`one_time_token`: HttpOnly, SameSite=Strict"))),
        (status = 400, description = "`token_invalid`", body = ErrorBody),
    )
)]
#[post("/tokens/validate")]
pub async fn validate_token(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<ValidateTokenRequest>,
) -> Result<HttpResponse, AppError> {
    let token = body
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AppError::validation("token", "is required"))?;
    let validated = state.email_links.validate_token(&token).await?;
    Ok(HttpResponse::Ok()
        .cookie(state.one_time_cookie.one_time(&validated.follow_up))
        .json(ValidatedBody {
            token_type: validated.kind.into(),
            metadata: validated.metadata,
        }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EmailLoginRequest {
    /// The token of the mailed link; or give `email` and `code`.
    token: Option<String>,
    #[schema(format = Email, max_length = 254, example = "ada@example.com")]
    email: Option<String>,
    /// The 6-digit code of the mail.
    #[schema(pattern = "^[0-9]{6}$", example = "042137")]
    code: Option<String>,
    token_transport: TokenTransport,
}

/// Mail a sign-in link and code
#[utoipa::path(
    tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "The same answer whether or not the address has an account: a mail with a sign-in link and a code is on its way to an account's address", body = MessageBody),
        (status = 404, description = "`feature_disabled`: passwordless sign-in is off (`auth.passwordless.enabled`)", body = ErrorBody),
    )
)]
#[post("/email/login")]
pub async fn request_email_login(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<EmailRequest>,
) -> Result<HttpResponse, AppError> {
    state.email_links.request_email_login(&body.email).await?;
    Ok(accepted())
}

/// Sign in with a mailed link or code
#[utoipa::path(
    tag = "auth",
    request_body = EmailLoginRequest,
    responses(
        (status = 200, description = "Signed in (`amr` `email`, `aal` 1; refresh cookie set), or the second step for an account with a factor", body = LoginResponse,
            headers(("Set-Cookie" = String, description = "`refresh_token` when signed in"))),
        (status = 400, description = "`token_invalid`: the link or code is wrong, used, expired, or out of submissions", body = ErrorBody),
        (status = 404, description = "`feature_disabled`: passwordless sign-in is off", body = ErrorBody),
    )
)]
#[post("/email/login/verify")]
pub async fn email_login(
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<EmailLoginRequest>,
) -> Result<HttpResponse, AppError> {
    let proof = match (body.token.filter(|t| !t.is_empty()), body.email, body.code) {
        (Some(token), None, None) => EmailLoginProof::Link(token),
        (None, Some(email), Some(code)) => EmailLoginProof::Code { email, code },
        _ => {
            return Err(AppError::validation(
                "token",
                "give the link's token, or email and code",
            ))
        }
    };
    let outcome = state.email_links.email_login(proof, &client).await?;
    Ok(login_response(&state, outcome, body.token_transport))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailChangedBody {
    message: &'static str,
    /// Sessions that were signed out (all but the confirming one when it is the account's).
    revoked_sessions: usize,
}

/// Confirm a new address
#[utoipa::path(
    tag = "email",
    request_body(content = Option<TokenRequest>, description = "Optional when the `one_time_token` cookie carries the token"),
    security((), ("one_time_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The account's address is the new one, verified; the account's other sessions are signed out", body = EmailChangedBody),
        (status = 400, description = "`token_invalid` (unknown, used, expired, or the session that asked for the change has ended) or `validation_failed`", body = ErrorBody),
        (status = 409, description = "`email_taken`: another account took the address meanwhile", body = ErrorBody),
    )
)]
#[post("/email/change/confirm")]
pub async fn confirm_email_change(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    MaybeAuthUser(claims): MaybeAuthUser,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    let token = one_time_token(&req, body.token)?;
    let revoked_sessions = state
        .email_links
        .confirm_email_change(&token, claims.as_ref(), &client)
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(state.one_time_cookie.one_time_cleared())
        .json(EmailChangedBody {
            message: "email address changed",
            revoked_sessions,
        }))
}
