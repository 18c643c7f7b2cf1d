//! `GET /metrics`: Prometheus text, for the networks in `metrics.allowed_networks` only; anyone
//! else (and everyone when metrics are off) gets the plain 404 of an unknown path.

use actix_web::{web, HttpResponse};

use crate::error::AppError;
use crate::http::extractors::Client;
use crate::http::AppState;

pub async fn render(
    state: web::Data<AppState>,
    Client(client): Client,
) -> Result<HttpResponse, AppError> {
    let allowed = match (&state.metrics_networks, client.ip) {
        (Some(networks), Some(ip)) => networks.iter().any(|n| n.contains(&ip)),
        _ => false,
    };
    if !allowed {
        return Err(AppError::NotFound);
    }
    let text = crate::metrics::render(state.store.as_ref(), &state.hasher.stats()).await;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
