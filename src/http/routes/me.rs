use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::error::AppError;
use crate::http::extractors::AuthUser;
use crate::http::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MeBody {
    id: uuid::Uuid,
    email: String,
    name: Option<String>,
    role: &'static str,
    email_verified: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

pub async fn get(
    state: web::Data<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<HttpResponse, AppError> {
    let user = state.auth.me(&claims).await?;
    Ok(HttpResponse::Ok().json(MeBody {
        id: user.id,
        email: user.email,
        name: user.name,
        role: user.role.as_str(),
        email_verified: user.email_verified,
        created_at: user.created_at,
        updated_at: user.updated_at,
    }))
}
