use actix_web::{get, web, HttpResponse};

use super::MeBody;
use crate::error::AppError;
use crate::http::extractors::AuthUser;
use crate::http::AppState;

#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "The signed-in user", body = MeBody))
)]
#[get("/me")]
pub async fn get(
    state: web::Data<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<HttpResponse, AppError> {
    let user = state.auth.me(&claims).await?;
    Ok(HttpResponse::Ok().json(MeBody::from(&user)))
}
