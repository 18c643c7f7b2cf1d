//! `/admin/*`: user administration, for unlocked admins only.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{event_page, AdminEventQuery, EventListBody};
use crate::domain::user::{Role, User};
use crate::error::AppError;
use crate::flows::admin::UserChanges;
use crate::http::error::ErrorBody;
use crate::http::extractors::{AdminUser, Client, JsonBody, PathParams, QueryParams};
use crate::http::AppState;

/// A user as an admin sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserBody {
    id: Uuid,
    email: String,
    name: Option<String>,
    role: &'static str,
    email_verified: bool,
    locked: bool,
    #[serde(serialize_with = "super::timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "super::timestamp")]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// Search in email and name.
    q: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserListBody {
    users: Vec<AdminUserBody>,
    next_cursor: Option<String>,
}

/// List users
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "A page of users, oldest first", body = UserListBody))
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: Result<QueryParams<ListQuery>, AppError>,
) -> Result<HttpResponse, AppError> {
    let QueryParams(query) = query?;
    let list = state
        .admin
        .list_users(query.cursor.as_deref(), query.limit, query.q.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(UserListBody {
        users: list.users.iter().map(AdminUserBody::from).collect(),
        next_cursor: list.next_cursor,
    }))
}

/// One user
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = AdminUserBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
#[get("/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: Result<PathParams<Uuid>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    let user = state.admin.get_user(id).await?;
    Ok(HttpResponse::Ok().json(AdminUserBody::from(&user)))
}

/// Absent fields stay as they are; `null` is refused (400 naming it): neither field can be
/// cleared, and a `null` sent for a value would otherwise be a silent no-op.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(deserialize_with = "super::present")]
    #[schema(nullable = false)]
    role: Option<Role>,
    #[serde(deserialize_with = "super::present")]
    #[schema(nullable = false)]
    locked: Option<bool>,
}

/// Change a user's role or lock
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body(content = Option<UpdateUserRequest>, description = "The fields to change; none changes nothing"),
    responses(
        (status = 200, description = "The updated user; locking revokes its sessions", body = AdminUserBody),
        (status = 400, description = "`validation_failed`: a bad field, or demoting or locking the caller's own account", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`last_admin`: it would demote or lock the last live, unlocked admin", body = ErrorBody),
    )
)]
#[patch("/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    id: Result<PathParams<Uuid>, AppError>,
    body: Result<JsonBody<UpdateUserRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    let JsonBody(body) = body?;
    let changes = UserChanges {
        role: body.role,
        locked: body.locked,
    };
    let user = state
        .admin
        .update_user(&admin, id, changes, &client)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserBody::from(&user)))
}

/// Delete a user
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted; its sessions are revoked"),
        (status = 400, description = "`validation_failed`: the caller's own account", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`last_admin`: the last live, unlocked admin", body = ErrorBody),
    )
)]
#[delete("/users/{id}")]
pub async fn delete_user(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    id: Result<PathParams<Uuid>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    state.admin.delete_user(&admin, id, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedBody {
    revoked_sessions: usize,
}

/// Sign a user out everywhere
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Every session of the user is revoked", body = RevokedBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
#[post("/users/{id}/revoke-sessions")]
pub async fn revoke_sessions(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    id: Result<PathParams<Uuid>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    let revoked_sessions = state
        .admin
        .revoke_user_sessions(&admin, id, &client)
        .await?;
    Ok(HttpResponse::Ok().json(RevokedBody { revoked_sessions }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct InvitationRequest {
    #[schema(required = true, format = Email, max_length = 254, example = "ada@example.com")]
    email: String,
    /// Required (`null` or absent: 400); an `Option` only to answer with a field error.
    #[schema(required = true, value_type = Role)]
    role: Option<Role>,
    /// Returned by `POST /auth/tokens/validate` to the invitee's page.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationBody {
    email: String,
    role: &'static str,
    message: &'static str,
}

/// Invite someone
///
/// Mails a one-time invitation; signing up with it grants the role and a verified email.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = InvitationRequest,
    responses(
        (status = 201, description = "A one-time invitation is mailed", body = InvitationBody),
        (status = 409, description = "`email_taken`: the address already has an account", body = ErrorBody),
    )
)]
#[post("/invitations")]
pub async fn invite(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    body: Result<JsonBody<InvitationRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    let role = body
        .role
        .ok_or_else(|| AppError::validation("role", "is required (user or admin)"))?;
    let email = state
        .admin
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

/// The audit log
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(AdminEventQuery),
    responses((status = 200, description = "Audit events of everyone (or those about `userId`'s account, or those `actorId`, an admin, caused), newest first", body = EventListBody))
)]
#[get("/events")]
pub async fn events(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: Result<QueryParams<AdminEventQuery>, AppError>,
) -> Result<HttpResponse, AppError> {
    let QueryParams(query) = query?;
    let (events, next_cursor) = state
        .admin
        .events(
            query.user_id,
            query.actor_id,
            query.cursor.as_deref(),
            query.limit,
        )
        .await?;
    Ok(event_page(events, next_cursor))
}
