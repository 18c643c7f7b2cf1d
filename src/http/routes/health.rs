//! Liveness (the process answers), readiness (the store and the cache answer too), and the JWKS
//! that resource servers verify access tokens with.

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, FieldError};
use crate::http::error::ErrorBody;
use crate::http::AppState;

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// Always `ok` (a failure is an error answer).
    status: &'static str,
    /// Readiness only: `store` and `cache`, each `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    checks: Option<serde_json::Value>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "The process answers", body = HealthBody))
)]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthBody {
        status: "ok",
        checks: None,
    })
}

async fn check<E: std::fmt::Display>(
    component: &str,
    probe: impl std::future::Future<Output = Result<(), E>>,
) -> Option<FieldError> {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(component, error = %e, "readiness check failed");
            Some(FieldError::new(component, "unreachable"))
        }
        Err(_) => Some(FieldError::new(component, "timed out")),
    }
}

/// Readiness: the store and the cache answer
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "The store and the cache answer", body = HealthBody),
        (status = 503, description = "`not_ready`; `details` names the failing component", body = ErrorBody),
    )
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let (store, cache) = tokio::join!(
        check("store", state.store.ping()),
        check("cache", state.cache.ping())
    );
    let failures: Vec<FieldError> = store.into_iter().chain(cache).collect();
    if failures.is_empty() {
        Ok(HttpResponse::Ok().json(HealthBody {
            status: "ok",
            checks: Some(serde_json::json!({ "store": "ok", "cache": "ok" })),
        }))
    } else {
        Err(AppError::NotReady(failures))
    }
}

/// The public signing keys (JWKS)
///
/// The public keys of the asymmetric signing keys in force (empty for HS*). Caches may keep it a
/// minute; a rotated-in key signs only after nodes reload theirs.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "RFC 7517 JSON Web Key Set of the asymmetric signing keys in force (empty for HS*)", body = Object))
)]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let keys = state.auth.jwks().await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "public, max-age=60"))
        .json(keys))
}
