pub mod account;
pub mod admin;
pub mod auth;
pub mod email_links;
pub mod events;
pub mod health;
pub mod me;
pub mod metrics;

use serde::Serialize;
use utoipa::ToSchema;

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

use crate::domain::user::User;

/// `user` of the contract.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserBody {
    pub id: uuid::Uuid,
    pub email: String,
    pub name: Option<String>,
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
