//! Prometheus metrics: every name authd exports is here, recorded through the `metrics` facade
//! and rendered by `metrics-exporter-prometheus` at `/metrics`.
//!
//! Counters and histograms are recorded where things happen; gauges that describe a state (the
//! hasher's queue, the DB pool, the mail outbox, the webhook queue) are read when Prometheus
//! scrapes.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed on first use (the `metrics` facade has one global
/// recorder; several apps in one test process share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
        }
        handle
    })
}

/// The `method` label: a standard method by name, anything else (a client may send any token
/// there) as `other`, so that nobody can grow the series without bound.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// One answered HTTP request; `route` is the matched pattern (bounded cardinality), never the
/// raw path, and `method` a standard one or `other`.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let method = method_label(method);
    let labels = [
        ("method", method.to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    counter!("authd_http_requests_total", &labels).increment(1);
    histogram!(
        "authd_http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route.to_string()
    )
    .record(elapsed.as_secs_f64());
}

/// One hasher job: how long it waited for a worker thread, and how long it ran.
pub fn hasher_job(operation: &'static str, waited: Duration, ran: Duration) {
    histogram!("authd_hasher_wait_seconds", "op" => operation).record(waited.as_secs_f64());
    histogram!("authd_hasher_job_seconds", "op" => operation).record(ran.as_secs_f64());
}

pub fn hasher_rejected() {
    counter!("authd_hasher_rejections_total").increment(1);
}

/// A hasher job answered 503 without running: it waited longer than `hasher.max_queue_wait_ms`.
pub fn hasher_expired(operation: &'static str) {
    counter!("authd_hasher_expired_total", "op" => operation).increment(1);
}

/// Counts a message sent to an actor and not answered yet, until the guard drops: actix
/// mailboxes are unbounded and do not report their length, so the backlog is counted here.
pub struct MailboxGuard(&'static str);

pub fn mailbox(actor: &'static str) -> MailboxGuard {
    actor_message(actor);
    gauge!("authd_actor_mailbox_backlog", "actor" => actor).increment(1.0);
    MailboxGuard(actor)
}

impl Drop for MailboxGuard {
    fn drop(&mut self) {
        gauge!("authd_actor_mailbox_backlog", "actor" => self.0).decrement(1.0);
    }
}

/// One message sent to an actor's mailbox (how many hops a request makes, per actor).
pub fn actor_message(actor: &'static str) {
    counter!("authd_actor_messages_total", "actor" => actor).increment(1);
}

/// A request or login refused by a rate limit; `scope` is `ip`, `route` or `account`.
pub fn rate_limited(scope: &'static str) {
    counter!("authd_rate_limit_rejections_total", "scope" => scope).increment(1);
}

/// An MFA outcome: `step` is `login`, `enrolment`, `step_up` or `recovery_code`; `outcome` is
/// `passed`, `failed`, `replayed`, `required` or `throttled`.
pub fn mfa_outcome(step: &'static str, outcome: &'static str) {
    counter!("authd_mfa_outcomes_total", "step" => step, "outcome" => outcome).increment(1);
}

/// A sign-in through another provider: `step` is `callback`, `id_token` or `sign_in`; `outcome`
/// is `passed` or the error code.
pub fn federation_outcome(step: &'static str, outcome: &'static str) {
    counter!("authd_federation_outcomes_total", "step" => step, "outcome" => outcome).increment(1);
}

/// A step of an emailed flow: `flow` is `email_login` or `email_change`; `outcome` is `mailed`,
/// `mail_limited`, `signed_in`, `wrong_code`, `invalid`, `requested` or `changed`.
pub fn email_flow(flow: &'static str, outcome: &'static str) {
    counter!("authd_email_flow_total", "flow" => flow, "outcome" => outcome).increment(1);
}

/// A breached-password check; `outcome` is `clean`, `breached` or `unavailable`.
pub fn breach_check(outcome: &'static str) {
    counter!("authd_breach_checks_total", "outcome" => outcome).increment(1);
}

/// A failed store or cache operation; `kind` is `unavailable` or `backend`.
pub fn backend_error(backend: &'static str, kind: &'static str) {
    counter!("authd_backend_errors_total", "backend" => backend, "kind" => kind).increment(1);
}

/// A mail delivery attempt; `outcome` is `sent`, `retry` or `dead`.
pub fn mail_attempt(outcome: &'static str) {
    counter!("authd_mail_deliveries_total", "outcome" => outcome).increment(1);
}

/// A webhook delivery attempt; `outcome` is `sent`, `retry` or `dead`.
pub fn webhook_delivery(outcome: &'static str) {
    counter!("authd_webhook_deliveries_total", "outcome" => outcome).increment(1);
}

/// How long one webhook request took, answered or not (a timeout counts its full wait).
pub fn webhook_request(elapsed: Duration) {
    histogram!("authd_webhook_request_duration_seconds").record(elapsed.as_secs_f64());
}

/// A refresh token presented again after its rotation (its session is revoked).
pub fn refresh_reuse_detected() {
    counter!("authd_refresh_reuse_detected_total").increment(1);
}

/// What the process holds at the moment of a scrape, read by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateGauges {
    pub hasher_workers: usize,
    pub hasher_capacity: usize,
    pub hasher_in_flight: usize,
    pub hasher_queued: usize,
    /// The store's connection pool, for a backend that has one.
    pub pool: Option<PoolGauges>,
    /// Mails waiting in the outbox; `None` when it could not be read.
    pub outbox_depth: Option<i64>,
    /// Webhook deliveries waiting to be sent to enabled endpoints; `None` when webhooks are off
    /// or the queue could not be read.
    pub webhook_queue_depth: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// Sets the state gauges, then renders the text exposition.
pub fn render(state: &StateGauges) -> String {
    gauge!("authd_hasher_workers").set(state.hasher_workers as f64);
    gauge!("authd_hasher_capacity").set(state.hasher_capacity as f64);
    gauge!("authd_hasher_in_flight").set(state.hasher_in_flight as f64);
    gauge!("authd_hasher_queue_depth").set(state.hasher_queued as f64);
    if let Some(pool) = state.pool {
        gauge!("authd_db_pool_max_connections").set(pool.max_size as f64);
        gauge!("authd_db_pool_connections", "state" => "in_use")
            .set(pool.size.saturating_sub(pool.available) as f64);
        gauge!("authd_db_pool_connections", "state" => "idle").set(pool.available as f64);
        gauge!("authd_db_pool_waiting").set(pool.waiting as f64);
    }
    if let Some(depth) = state.outbox_depth {
        gauge!("authd_mail_outbox_depth").set(depth as f64);
    }
    if let Some(depth) = state.webhook_queue_depth {
        gauge!("authd_webhook_queue_depth").set(depth as f64);
    }
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("get"), "other");
        assert_eq!(method_label(&"M".repeat(4000)), "other");
    }
}
