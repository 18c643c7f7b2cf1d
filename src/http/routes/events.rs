//! The audit log: `GET /me/events` (one's own) and `GET /admin/events` (everyone's, or one user's).

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::claims::Caller;
use crate::error::AppError;
use crate::http::extractors::{AdminUser, AuthUser};
use crate::http::AppState;
use crate::store::AuthEvent;

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// Admins only: one user's events.
    user_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBody {
    id: Uuid,
    user_id: Option<Uuid>,
    kind: String,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    #[serde(serialize_with = "super::timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<AuthEvent> for EventBody {
    fn from(e: AuthEvent) -> Self {
        EventBody {
            id: e.id,
            user_id: e.user_id,
            kind: e.kind,
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            details: serde_json::from_str(&e.details).unwrap_or_default(),
            created_at: e.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventListBody {
    events: Vec<EventBody>,
    next_cursor: Option<String>,
}

fn page(events: Vec<AuthEvent>, next_cursor: Option<String>) -> HttpResponse {
    HttpResponse::Ok().json(EventListBody {
        events: events.into_iter().map(EventBody::from).collect(),
        next_cursor,
    })
}

#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(EventQuery),
    responses((status = 200, description = "The user's own audit events, newest first", body = EventListBody))
)]
#[get("/me/events")]
pub async fn mine(
    state: web::Data<AppState>,
    AuthUser(Caller { claims, .. }): AuthUser,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, AppError> {
    let (events, next_cursor) = state
        .account
        .events(&claims, query.cursor.as_deref(), query.limit)
        .await?;
    Ok(page(events, next_cursor))
}

#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(EventQuery),
    responses((status = 200, description = "Audit events of everyone (or of `userId`), newest first", body = EventListBody))
)]
#[get("/events")]
pub async fn all(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, AppError> {
    let (events, next_cursor) = state
        .admin
        .events(query.user_id, query.cursor.as_deref(), query.limit)
        .await?;
    Ok(page(events, next_cursor))
}
