//! The emailed flows: verify, resend, forgot, reset, and the token exchange for a cookie.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MessageBody;
use crate::error::AppError;
use crate::http::cookies::ONE_TIME_COOKIE;
use crate::http::extractors::{Client, JsonBody};
use crate::http::AppState;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenRequest {
    token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EmailRequest {
    email: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ResetRequest {
    token: Option<String>,
    new_password: String,
}

/// The emailed token from the body, else the follow-up token from the `one_time_token` cookie.
fn one_time_token(req: &HttpRequest, body: Option<String>) -> Result<String, AppError> {
    body.filter(|t| !t.is_empty())
        .or_else(|| req.cookie(ONE_TIME_COOKIE).map(|c| c.value().to_string()))
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

pub async fn verify_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    let token = one_time_token(&req, body.token)?;
    state.lifecycle.verify_email(&token, &client).await?;
    Ok(HttpResponse::Ok()
        .cookie(state.one_time_cookie.one_time_cleared())
        .json(MessageBody {
            message: "email verified",
        }))
}

pub async fn resend_verification(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<EmailRequest>,
) -> Result<HttpResponse, AppError> {
    state.lifecycle.resend_verification(&body.email).await?;
    Ok(accepted())
}

pub async fn forgot_password(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<EmailRequest>,
) -> Result<HttpResponse, AppError> {
    state.lifecycle.forgot_password(&body.email).await?;
    Ok(accepted())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResetBody {
    message: &'static str,
    revoked_sessions: usize,
}

pub async fn reset_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<ResetRequest>,
) -> Result<HttpResponse, AppError> {
    let token = one_time_token(&req, body.token)?;
    let revoked_sessions = state
        .lifecycle
        .reset_password(&token, &body.new_password, &client)
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(state.one_time_cookie.one_time_cleared())
        .json(ResetBody {
            message: "password reset; every session has been signed out",
            revoked_sessions,
        }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidatedBody {
    token_type: &'static str,
    metadata: Value,
}

pub async fn validate_token(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    let token = body
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AppError::validation("token", "is required"))?;
    let validated = state.lifecycle.validate_token(&token).await?;
    Ok(HttpResponse::Ok()
        .cookie(state.one_time_cookie.one_time(&validated.follow_up))
        .json(ValidatedBody {
            token_type: validated.kind.as_str(),
            metadata: validated.metadata,
        }))
}
