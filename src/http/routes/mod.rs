pub mod account;
pub mod admin;
pub mod auth;
pub mod email_links;
pub mod federation;
pub mod health;
pub mod metrics;
pub mod mfa;
pub mod passkeys;
pub mod webhooks;

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Timestamps in answers: RFC 3339, UTC, always six fractional digits
/// (`2026-12-03T08:30:08.123400Z`). One fixed width, as the stores keep microseconds: chrono's
/// default drops trailing zeros and shows whatever precision a value has, so two answers could
/// differ in the shape of a timestamp alone (a stand-in made in memory against a stored row).
pub(crate) fn timestamp<S: serde::Serializer>(
    time: &chrono::DateTime<chrono::Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// [`timestamp`] for an optional time (`null` when absent).
pub(crate) fn optional_timestamp<S: serde::Serializer>(
    time: &Option<chrono::DateTime<chrono::Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => timestamp(time, serializer),
        None => serializer.serialize_none(),
    }
}

use crate::domain::user::User;
use crate::store::AuthEvent;

/// `user` of the contract.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserBody {
    pub id: uuid::Uuid,
    pub email: String,
    pub name: Option<String>,
    #[schema(value_type = RoleName)]
    pub role: &'static str,
    pub email_verified: bool,
    #[serde(serialize_with = "timestamp")]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        UserBody {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            role: user.role.as_str(),
            email_verified: user.email_verified,
            created_at: user.created_at,
        }
    }
}

/// `GET /me`: the user with `updatedAt`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeBody {
    #[serde(flatten)]
    user: UserBody,
    #[serde(serialize_with = "timestamp")]
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<&User> for MeBody {
    fn from(user: &User) -> Self {
        MeBody {
            user: UserBody::from(user),
            updated_at: user.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    pub message: &'static str,
}

/// A page of the audit log: `GET /me/events` (one's own). Other unknown parameters are ignored
/// (a cache-buster), but an admin's `userId` is refused rather than ignored, so a caller never
/// mistakes its own events for someone else's.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    #[param(ignore)]
    pub user_id: Option<String>,
}

/// A page of everyone's audit log, or one user's: `GET /admin/events`.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AdminEventQuery {
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Only the events about this user's account.
    pub user_id: Option<Uuid>,
    /// Only the events this admin caused (`actorId` of the events).
    pub actor_id: Option<Uuid>,
}

/// `role` values, for the document (the domain's `Role` knows nothing of HTTP).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum RoleName {
    User,
    Admin,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBody {
    id: Uuid,
    /// The account the event is about.
    user_id: Option<Uuid>,
    /// The admin who acted, for an admin's action (in `/admin/events` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_id: Option<Uuid>,
    kind: String,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    #[serde(serialize_with = "timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<AuthEvent> for EventBody {
    fn from(e: AuthEvent) -> Self {
        EventBody {
            id: e.id,
            user_id: e.user_id,
            actor_id: e.actor_id,
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

pub(crate) fn event_page(events: Vec<AuthEvent>, next_cursor: Option<String>) -> HttpResponse {
    HttpResponse::Ok().json(EventListBody {
        events: events.into_iter().map(EventBody::from).collect(),
        next_cursor,
    })
}

/// A field that is present, `null` included (`Some(None)`); with `default`, an absent one is
/// `None`: what a partial update needs to tell "clear it" from "leave it".
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}
