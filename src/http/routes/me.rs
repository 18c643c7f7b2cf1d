use actix_web::{get, HttpResponse};

use super::MeBody;
use crate::error::AppError;
use crate::http::extractors::AuthUser;

#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "The signed-in user", body = MeBody))
)]
#[get("/me")]
pub async fn get(AuthUser(caller): AuthUser) -> Result<HttpResponse, AppError> {
    // The account was read with the session check, in the same query.
    Ok(HttpResponse::Ok().json(MeBody::from(&caller.user)))
}
