//! The signed-in user's own account: sessions, profile, password, deletion.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::MeBody;
use crate::error::AppError;
use crate::http::extractors::{AuthUser, Client, JsonBody};
use crate::http::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionBody {
    id: Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    last_used_at: chrono::DateTime<chrono::Utc>,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

pub async fn sessions(
    state: web::Data<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<HttpResponse, AppError> {
    let sessions: Vec<SessionBody> = state
        .accounts
        .sessions(&claims)
        .await?
        .into_iter()
        .map(|(s, current)| SessionBody {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            user_agent: s.user_agent,
            ip: s.ip,
            current,
        })
        .collect();
    Ok(HttpResponse::Ok().json(sessions))
}

pub async fn revoke_session(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(claims): AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, AppError> {
    state
        .accounts
        .revoke_session(&claims, id.into_inner(), &client)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateMeRequest {
    name: Option<String>,
}

pub async fn update_me(
    state: web::Data<AppState>,
    AuthUser(claims): AuthUser,
    JsonBody(body): JsonBody<UpdateMeRequest>,
) -> Result<HttpResponse, AppError> {
    let user = state
        .accounts
        .update_name(&claims, body.name.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(MeBody::from(&user)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DeleteMeRequest {
    password: String,
}

pub async fn delete_me(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(claims): AuthUser,
    JsonBody(body): JsonBody<DeleteMeRequest>,
) -> Result<HttpResponse, AppError> {
    state
        .accounts
        .delete_me(&claims, &body.password, &client)
        .await?;
    Ok(HttpResponse::NoContent()
        .cookie(state.cookies.cleared())
        .finish())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangePasswordBody {
    message: &'static str,
    revoked_sessions: usize,
}

pub async fn change_password(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(claims): AuthUser,
    JsonBody(body): JsonBody<ChangePasswordRequest>,
) -> Result<HttpResponse, AppError> {
    let revoked_sessions = state
        .accounts
        .change_password(&claims, &body.current_password, &body.new_password, &client)
        .await?;
    Ok(HttpResponse::Ok().json(ChangePasswordBody {
        message: "password changed; other sessions signed out",
        revoked_sessions,
    }))
}
