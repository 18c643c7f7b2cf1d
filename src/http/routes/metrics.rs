//! `GET /metrics`: Prometheus text, for the networks in `metrics.allowed_networks` only; anyone
//! else (and everyone when metrics are off) gets the plain 404 of an unknown path.

use std::net::IpAddr;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::AppError;
use crate::http::extractors::Client;
use crate::http::AppState;
use crate::metrics::{self, PoolGauges, StateGauges};

pub async fn render(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
) -> Result<HttpResponse, AppError> {
    let allowed = match (&state.metrics_networks, client.ip) {
        (Some(networks), Some(ip)) => {
            networks.iter().any(|n| n.contains(&ip)) && !through_an_untrusted_proxy(&req, ip)
        }
        _ => false,
    };
    if !allowed {
        return Err(AppError::NotFound);
    }
    let hasher = state.hasher.stats();
    let outbox_depth = state
        .store
        .outbox_depth()
        .await
        .map_err(|e| tracing::warn!(error = %e, "metrics: could not read the outbox depth"))
        .ok();
    let text = metrics::render(&StateGauges {
        hasher_workers: hasher.workers,
        hasher_capacity: hasher.capacity,
        hasher_in_flight: hasher.in_flight,
        hasher_queued: hasher.queued,
        pool: state.store.pool_status().map(|pool| PoolGauges {
            max_size: pool.max_size,
            size: pool.size,
            available: pool.available,
            waiting: pool.waiting,
        }),
        outbox_depth,
        webhook_queue_depth: state.webhooks.queue_depth().await,
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

/// Whether the request names a client behind its peer (a forwarding header) that authd did not
/// believe (`client` is still the peer): a load balancer on a private address, not configured
/// in `http.trusted_proxies`, would otherwise pass anyone's scrape on from an allowed network.
fn through_an_untrusted_proxy(req: &HttpRequest, client: IpAddr) -> bool {
    let forwarded = [
        "x-forwarded-for",
        "forwarded",
        "x-real-ip",
        "via",
        "true-client-ip",
        "cf-connecting-ip",
        "x-client-ip",
    ]
    .iter()
    .any(|name| req.headers().contains_key(*name));
    let peer = req.peer_addr().map(|peer| peer.ip());
    forwarded && peer == Some(client)
}
