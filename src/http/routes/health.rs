//! Liveness (the process answers), readiness (the store and the cache answer too), and the JWKS
//! that resource servers verify access tokens with.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::{AppError, FieldError};
use crate::http::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
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

pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let (store, cache) = tokio::join!(
        check("store", state.store.ping()),
        check("cache", state.cache.ping())
    );
    let failures: Vec<FieldError> = store.into_iter().chain(cache).collect();
    if failures.is_empty() {
        Ok(HttpResponse::Ok()
            .json(json!({ "status": "ok", "checks": { "store": "ok", "cache": "ok" } })))
    } else {
        Err(AppError::NotReady(failures))
    }
}

/// `GET /.well-known/jwks.json`: public keys of the asymmetric signing keys in force (empty for
/// HS*). Caches may keep it a minute; a rotated-in key signs only after nodes reload theirs.
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let keys = state.auth.jwks().await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "public, max-age=60"))
        .json(keys))
}
