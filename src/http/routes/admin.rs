//! `/admin/*`: user administration, for unlocked admins only.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::accounts::UserChanges;
use crate::domain::user::{Role, User};
use crate::error::AppError;
use crate::http::extractors::{AdminUser, Client, JsonBody};
use crate::http::AppState;

/// A user as an admin sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserBody {
    id: Uuid,
    email: String,
    name: Option<String>,
    role: &'static str,
    email_verified: bool,
    locked: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<&User> for AdminUserBody {
    fn from(user: &User) -> Self {
        AdminUserBody {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            role: user.role.as_str(),
            email_verified: user.email_verified,
            locked: user.locked,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
    q: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserListBody {
    users: Vec<AdminUserBody>,
    next_cursor: Option<String>,
}

pub async fn list_users(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let list = state
        .accounts
        .list_users(query.cursor.as_deref(), query.limit, query.q.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(UserListBody {
        users: list.users.iter().map(AdminUserBody::from).collect(),
        next_cursor: list.next_cursor,
    }))
}

pub async fn get_user(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, AppError> {
    let user = state.accounts.get_user(id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(AdminUserBody::from(&user)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UpdateUserRequest {
    role: Option<Role>,
    locked: Option<bool>,
}

pub async fn update_user(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    id: web::Path<Uuid>,
    JsonBody(body): JsonBody<UpdateUserRequest>,
) -> Result<HttpResponse, AppError> {
    let changes = UserChanges {
        role: body.role,
        locked: body.locked,
    };
    let user = state
        .accounts
        .update_user(&admin, id.into_inner(), changes, &client)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserBody::from(&user)))
}

pub async fn delete_user(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, AppError> {
    state
        .accounts
        .delete_user(&admin, id.into_inner(), &client)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RevokedBody {
    revoked_sessions: usize,
}

pub async fn revoke_sessions(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, AppError> {
    let revoked_sessions = state
        .accounts
        .revoke_user_sessions(&admin, id.into_inner(), &client)
        .await?;
    Ok(HttpResponse::Ok().json(RevokedBody { revoked_sessions }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct InvitationRequest {
    email: String,
    role: Option<Role>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct InvitationBody {
    email: String,
    role: &'static str,
    message: &'static str,
}

/// `POST /admin/invitations`: mails a one-time invitation; signing up with it grants the role and
/// a verified email.
pub async fn invite(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    JsonBody(body): JsonBody<InvitationRequest>,
) -> Result<HttpResponse, AppError> {
    let role = body
        .role
        .ok_or_else(|| AppError::validation("role", "is required (user or admin)"))?;
    let email = state
        .auth
        .invite(
            &client,
            admin.id,
            &body.email,
            role,
            body.metadata.unwrap_or_default(),
        )
        .await?;
    Ok(HttpResponse::Created().json(InvitationBody {
        email,
        role: role.as_str(),
        message: "invitation sent",
    }))
}
