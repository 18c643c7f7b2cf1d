//! `/auth/*`: parse, call the flow, shape the answer.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{MessageBody, UserBody};
use crate::actors::tokens::IssuedTokens;
use crate::auth::{Invitation, LoginInput, SignupInput, SignupOutcome};
use crate::domain::user::User;
use crate::error::AppError;
use crate::http::cookies::{ONE_TIME_COOKIE, REFRESH_COOKIE};
use crate::http::extractors::{AuthUser, Client, JsonBody, MaybeAuthUser};
use crate::http::AppState;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenTransport {
    /// The refresh token rides only in the HttpOnly cookie (browsers).
    #[default]
    Cookie,
    /// Also in the JSON body, for clients without a cookie jar (mobile, servers).
    Body,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct SignupRequest {
    email: String,
    password: String,
    name: Option<String>,
    invitation_token: Option<String>,
    token_transport: TokenTransport,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct LoginRequest {
    email: String,
    password: String,
    token_transport: TokenTransport,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RefreshRequest {
    refresh_token: Option<String>,
    token_transport: TokenTransport,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserBody>,
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

#[derive(Serialize)]
struct VerificationBody {
    user: UserBody,
    message: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogoutAllBody {
    message: &'static str,
    revoked_sessions: usize,
}

fn token_response(
    mut builder: actix_web::HttpResponseBuilder,
    state: &AppState,
    user: Option<&User>,
    tokens: IssuedTokens,
    transport: TokenTransport,
) -> HttpResponse {
    let cookie = state.cookies.refresh(&tokens.refresh_token);
    builder.cookie(cookie).json(TokenBody {
        user: user.map(UserBody::from),
        access_token: tokens.access_token,
        token_type: "Bearer",
        expires_in: tokens.expires_in,
        refresh_token: (transport == TokenTransport::Body)
            .then(|| tokens.refresh_token.as_str().to_string()),
    })
}

/// The refresh token from the body when given there, else from the cookie.
fn presented_refresh(req: &HttpRequest, body: Option<String>) -> Option<String> {
    body.filter(|t| !t.is_empty())
        .or_else(|| req.cookie(REFRESH_COOKIE).map(|c| c.value().to_string()))
        .filter(|t| !t.is_empty())
}

pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<SignupRequest>,
) -> Result<HttpResponse, AppError> {
    let invitation = match body.invitation_token.filter(|t| !t.is_empty()) {
        Some(token) => Some(Invitation::Presented(token)),
        None => req
            .cookie(ONE_TIME_COOKIE)
            .map(|c| Invitation::Cookie(c.value().to_string())),
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

pub async fn login(
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<HttpResponse, AppError> {
    let input = LoginInput {
        email: body.email,
        password: body.password,
    };
    let (user, tokens) = state.auth.login(input, &client).await?;
    Ok(token_response(
        HttpResponse::Ok(),
        &state,
        Some(&user),
        tokens,
        body.token_transport,
    ))
}

pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let presented = presented_refresh(&req, body.refresh_token).ok_or(AppError::Unauthorized)?;
    match state.auth.refresh(presented, &client).await {
        Ok(tokens) => Ok(token_response(
            HttpResponse::Ok(),
            &state,
            None,
            tokens,
            body.token_transport,
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

pub async fn logout_all(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(claims): AuthUser,
) -> Result<HttpResponse, AppError> {
    let revoked_sessions = state.auth.logout_all(claims, &client).await?;
    Ok(HttpResponse::Ok()
        .cookie(state.cookies.cleared())
        .json(LogoutAllBody {
            message: "all sessions revoked",
            revoked_sessions,
        }))
}
