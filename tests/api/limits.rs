use authd::config::Settings;
use serde_json::Value;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend, TestApp, PASSWORD};

async fn credential_endpoints_answer_429_with_draft_7_headers_past_their_limit(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.rate_limit.auth_max = 2).await;
    for _ in 0..2 {
        let response = app.login("someone@example.com", "wrong password").await;
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "10000;w=60, 2;w=900"
        );
        assert!(response.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("limit="));
    }
    let response = app.login("someone@example.com", PASSWORD).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 900, "{retry_after}");
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "10000;w=60, 2;w=900"
    );
    let state = response.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(state.starts_with("limit=2, remaining=0, reset="), "{state}");
    assert_error(response, 429, "rate_limited").await;

    // The limit is per route: signup has its own allowance, and refresh is not a credential route.
    app.assert_signup_works("fresh@example.com").await;
}

async fn every_endpoint_has_a_per_ip_limit_but_health_checks_do_not(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.rate_limit.general_max = 3).await;
    for _ in 0..3 {
        let response = app.fetch("/me").await;
        assert_eq!(response.status().as_u16(), 401);
    }
    let response = app.fetch("/me").await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 429, "rate_limited").await;
    for _ in 0..5 {
        let response = app.fetch("/health/live").await;
        assert_eq!(response.status().as_u16(), 200);
    }
}

async fn rate_limits_can_be_switched_off(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limit.enabled = false;
        s.rate_limit.general_max = 1;
    })
    .await;
    for _ in 0..3 {
        let response = app.fetch("/me").await;
        assert_eq!(response.status().as_u16(), 401);
        assert!(!response.headers().contains_key("ratelimit"));
    }
}

/// `count` logins of unknown accounts at once: each is refused (401) or shed (503 `overloaded`
/// with `Retry-After`); how many were shed.
async fn concurrent_logins_shed(app: &TestApp, count: usize, prefix: &str) -> u64 {
    let emails: Vec<String> = (0..count)
        .map(|i| format!("{prefix}-{i}@example.com"))
        .collect();
    let logins = emails.iter().map(|email| app.login(email, "some password"));
    let mut overloaded = 0;
    for response in futures_util::future::join_all(logins).await {
        match response.status().as_u16() {
            401 => {}
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["code"], "overloaded");
                overloaded += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    overloaded
}

/// One hashing thread, `queue` places before it, and hashes slow enough (32 MiB, 3 passes, one
/// lane) that concurrent logins pile up.
fn one_slow_hashing_thread(settings: &mut Settings, queue: usize) {
    let hasher = &mut settings.hasher;
    hasher.workers = 1;
    hasher.queue_capacity = queue;
    hasher.argon2_memory_kib = 32768;
    hasher.argon2_iterations = 3;
    hasher.argon2_parallelism = 1;
}

async fn a_saturated_hasher_answers_503_overloaded_at_once_and_recovers(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        one_slow_hashing_thread(s, 1);
        s.server.workers = 2;
    })
    .await;
    let overloaded = concurrent_logins_shed(&app, 12, "flood").await;
    assert!(
        overloaded > 0,
        "a pool of 1 + 1 must refuse some of 12 concurrent logins"
    );
    let stats = app.hasher.stats();
    assert_eq!(stats.rejected, overloaded);
    assert_eq!(stats.in_flight, 0, "every permit is returned");
    assert!(stats.verifications + stats.rejected >= 12);

    // Once the burst is over, the pool serves again.
    app.assert_signup_works("after@example.com").await;
}

async fn a_login_that_waits_past_the_limit_answers_503_without_being_hashed(backend: Backend) {
    // One slow thread and room to queue every login, but only 10 ms of patience: the logins at
    // the back of the queue wait several hashes and must be shed, not served late.
    let app = spawn_app_with(backend, |s| {
        one_slow_hashing_thread(s, 8);
        s.hasher.max_queue_wait_ms = 10;
    })
    .await;
    let overloaded = concurrent_logins_shed(&app, 8, "late").await;
    let stats = app.hasher.stats();
    assert_eq!(stats.rejected, 0, "the queue had room for every login");
    assert!(
        stats.expired > 0,
        "eight hashes in a row on one thread take more than 10 ms"
    );
    assert_eq!(stats.expired, overloaded);
    assert_eq!(
        stats.verifications + stats.expired,
        8,
        "a shed login is never hashed"
    );
    assert_eq!(stats.in_flight, 0, "every permit is returned");
}

async fn health_checks_report_live_and_ready(backend: Backend) {
    let app = spawn_app(backend).await;
    let live: Value = app.fetch("/health/live").await.json().await.unwrap();
    assert_eq!(live["status"], "ok");
    let response = app.fetch("/health/ready").await;
    assert_eq!(response.status().as_u16(), 200);
    let ready: Value = response.json().await.unwrap();
    assert_eq!(ready["checks"]["store"], "ok");
    assert_eq!(ready["checks"]["cache"], "ok");
}

#[actix_web::test]
async fn the_app_refuses_to_start_without_its_redis_and_names_the_setting() {
    let app = spawn_app(Backend::PostgresRedis).await;
    // Point a second app at a port where no Redis listens: it must refuse to start, loudly.
    let mut settings = app.settings.clone();
    settings.cache.url = authd::config::ConnectionUrl::new("redis://127.0.0.1:1/0");
    settings.cache.connect_timeout_seconds = 1;
    let error = authd::app::Application::build(settings)
        .await
        .err()
        .expect("no start without a cache");
    assert!(format!("{error:#}").contains("cache.url"), "{error:#}");
}

crate::backend_tests!(
    credential_endpoints_answer_429_with_draft_7_headers_past_their_limit,
    every_endpoint_has_a_per_ip_limit_but_health_checks_do_not,
    rate_limits_can_be_switched_off,
    a_saturated_hasher_answers_503_overloaded_at_once_and_recovers,
    a_login_that_waits_past_the_limit_answers_503_without_being_hashed,
    health_checks_report_live_and_ready,
);
