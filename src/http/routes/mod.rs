pub mod account;
pub mod admin;
pub mod auth;
pub mod events;
pub mod health;
pub mod lifecycle;
pub mod me;
pub mod metrics;

use serde::Serialize;
use utoipa::ToSchema;

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
