//! The audit log: `GET /me/events` (one's own) and `GET /admin/events` (everyone's, or one user's).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AppError;
use crate::http::extractors::{AdminUser, AuthUser};
use crate::http::AppState;
use crate::store::AuthEvent;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventQuery {
    cursor: Option<String>,
    limit: Option<u32>,
    user_id: Option<Uuid>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventBody {
    id: Uuid,
    user_id: Option<Uuid>,
    kind: String,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    details: serde_json::Value,
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventListBody {
    events: Vec<EventBody>,
    next_cursor: Option<String>,
}

async fn list(
    state: &AppState,
    user_id: Option<Uuid>,
    query: &EventQuery,
) -> Result<HttpResponse, AppError> {
    let (events, next_cursor) = state
        .accounts
        .events(user_id, query.cursor.as_deref(), query.limit)
        .await?;
    Ok(HttpResponse::Ok().json(EventListBody {
        events: events.into_iter().map(EventBody::from).collect(),
        next_cursor,
    }))
}

pub async fn mine(
    state: web::Data<AppState>,
    AuthUser(claims): AuthUser,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, AppError> {
    list(&state, Some(claims.sub), &query).await
}

pub async fn all(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, AppError> {
    list(&state, query.user_id, &query).await
}
