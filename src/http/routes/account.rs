//! The signed-in user's own account: sessions, profile, password, deletion.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{event_page, EventListBody, EventQuery, MeBody, MessageBody};
use crate::domain::claims::Caller;
use crate::error::AppError;
use crate::http::error::ErrorBody;
use crate::http::extractors::{AuthUser, Client, EnrollingUser, JsonBody, PathParams, QueryParams};
use crate::http::AppState;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody {
    id: Uuid,
    #[serde(serialize_with = "super::timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "super::timestamp")]
    last_used_at: chrono::DateTime<chrono::Utc>,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

/// The caller's live sessions
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    responses((status = 200, description = "The user's active sessions, the current one marked", body = [SessionBody]))
)]
#[get("/sessions")]
pub async fn sessions(
    state: web::Data<AppState>,
    AuthUser(Caller { claims, .. }): AuthUser,
) -> Result<HttpResponse, AppError> {
    let sessions: Vec<SessionBody> = state
        .account
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

/// End one of the caller's sessions
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`not_found`: no such session of this user", body = ErrorBody),
    )
)]
#[delete("/sessions/{id}")]
pub async fn revoke_session(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(Caller { claims, .. }): AuthUser,
    id: Result<PathParams<Uuid>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    state.account.revoke_session(&claims, id, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// The new display name (at most 200 characters, no control characters); `null` or empty
    /// clears it, absent leaves it as it is.
    #[schema(value_type = Option<String>, nullable, max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$")]
    #[serde(deserialize_with = "super::present")]
    name: Option<Option<String>>,
}

/// Change the caller's profile
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body(content = Option<UpdateMeRequest>, description = "The fields to change; an absent one (or no body) is left as it is, an unknown one is refused"),
    responses((status = 200, description = "The updated profile", body = MeBody))
)]
#[patch("/me")]
pub async fn update_me(
    state: web::Data<AppState>,
    AuthUser(Caller { claims, user }): AuthUser,
    body: Result<JsonBody<UpdateMeRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    let user = match body.name {
        Some(name) => {
            let update = state.account.update_name(&claims, name.as_deref());
            update.await?
        }
        None => user,
    };
    Ok(HttpResponse::Ok().json(MeBody::from(&user)))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct DeleteMeRequest {
    #[schema(required = true, min_length = 1)]
    password: String,
}

/// Delete the caller's account
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = DeleteMeRequest,
    responses(
        (status = 204, description = "The account is deleted and every session revoked"),
        (status = 400, description = "`validation_failed`: the password is missing or wrong (a field error, not a 401, so a frontend does not take it for an expired session)", body = ErrorBody),
        (status = 409, description = "`last_admin`: the caller is the last live, unlocked admin", body = ErrorBody),
    )
)]
#[delete("/me")]
pub async fn delete_me(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(Caller { claims, .. }): AuthUser,
    body: Result<JsonBody<DeleteMeRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    state
        .account
        .delete_me(&claims, &body.password, &client)
        .await?;
    Ok(HttpResponse::NoContent()
        .cookie(state.cookies.cleared())
        .finish())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ChangePasswordRequest {
    /// A wrong current password is a field error (400), not a 401.
    #[schema(required = true, min_length = 1)]
    current_password: String,
    /// The same rules as signup's password.
    #[schema(required = true, min_length = 8, max_length = 128)]
    new_password: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordBody {
    message: &'static str,
    revoked_sessions: usize,
}

/// Change the password
#[utoipa::path(
    tag = "password",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; every other session is signed out", body = ChangePasswordBody),
        (status = 400, description = "`validation_failed`: the current password is wrong (a field error, not a 401) or the new one is weak", body = ErrorBody),
    )
)]
#[post("/password/change")]
pub async fn change_password(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(Caller { claims, .. }): AuthUser,
    body: Result<JsonBody<ChangePasswordRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    let revoked_sessions = state
        .account
        .change_password(&claims, &body.current_password, &body.new_password, &client)
        .await?;
    Ok(HttpResponse::Ok().json(ChangePasswordBody {
        message: "password changed; other sessions signed out",
        revoked_sessions,
    }))
}

/// The caller's audit log
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(EventQuery),
    responses((status = 200, description = "The user's own audit events, newest first", body = EventListBody))
)]
#[get("/me/events")]
pub async fn my_events(
    state: web::Data<AppState>,
    AuthUser(Caller { claims, .. }): AuthUser,
    query: Result<QueryParams<EventQuery>, AppError>,
) -> Result<HttpResponse, AppError> {
    let QueryParams(query) = query?;
    if query.user_id.is_some() {
        return Err(AppError::validation(
            "userId",
            "is not taken here: these are the caller's own events (admins: GET /admin/events)",
        ));
    }
    let (events, next_cursor) = state
        .account
        .events(&claims, query.cursor.as_deref(), query.limit)
        .await?;
    Ok(event_page(events, next_cursor))
}

/// The caller's profile
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "The signed-in user", body = MeBody))
)]
#[get("/me")]
pub async fn me(EnrollingUser(caller): EnrollingUser) -> Result<HttpResponse, AppError> {
    // The account was read with the session check, in the same query.
    Ok(HttpResponse::Ok().json(MeBody::from(&caller.user)))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EmailChangeRequest {
    #[schema(required = true, format = Email, max_length = 254, example = "ada@example.org")]
    new_email: String,
    /// The current password; without it, the session must have signed in recently (step-up).
    password: Option<String>,
}

/// Ask to change the account's address
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = EmailChangeRequest,
    responses(
        (status = 202, description = "A confirmation link is on its way to the new address (the same answer when another account holds it), and a notice to the old one; nothing changes until the link is used", body = MessageBody),
        (status = 400, description = "`validation_failed`: an invalid address, the current one, or a wrong password", body = ErrorBody),
    )
)]
#[post("/me/email")]
pub async fn request_email_change(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(Caller { claims, .. }): AuthUser,
    body: Result<JsonBody<EmailChangeRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    state
        .account
        .request_email_change(&claims, &body.new_email, body.password.as_deref(), &client)
        .await?;
    Ok(HttpResponse::Accepted().json(MessageBody {
        message: "a confirmation link is on its way to the new address",
    }))
}
