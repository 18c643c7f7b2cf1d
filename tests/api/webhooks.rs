//! Webhooks on audit events, through real HTTP: an in-process receiver on 127.0.0.1 (actix-web on
//! a port of its own) records every request and can be told to fail, to be slow or to be down.
//! Signatures are verified here independently (HMAC-SHA256 over `{id}.{timestamp}.{body}`, as
//! Standard Webhooks says), and nothing waits on the clock beyond polling for an outcome.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::helpers::{
    assert_error, refresh_cookie, spawn_app, spawn_app_with, Account, Backend, LocalServer,
    TestApp, PASSWORD,
};
use crate::smtp::free_port;

/// One request the receiver answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
    /// The status the receiver answered with.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inbox {
    received: Vec<Received>,
    /// Answer 500 to this many more requests.
    failures_left: u32,
    /// Wait this long before answering.
    delay: Duration,
    in_flight: usize,
    most_in_flight: usize,
}

/// Counts a request in flight until it is answered or dropped (the caller timed out).
struct InFlight(Arc<Mutex<Inbox>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}

async fn hook(
    inbox: web::Data<Mutex<Inbox>>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let shared = inbox.into_inner();
    let delay = {
        let mut inbox = shared.lock().unwrap();
        inbox.in_flight += 1;
        inbox.most_in_flight = inbox.most_in_flight.max(inbox.in_flight);
        inbox.delay
    };
    let _counted = InFlight(shared.clone());
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut inbox = shared.lock().unwrap();
    let status = if inbox.failures_left > 0 {
        inbox.failures_left -= 1;
        500
    } else {
        204
    };
    inbox.received.push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
    });
    HttpResponse::build(StatusCode::from_u16(status).unwrap()).finish()
}

/// A webhook receiver on 127.0.0.1 in the test process.
pub struct Receiver {
    pub port: u16,
    inbox: Arc<Mutex<Inbox>>,
    server: LocalServer,
}

impl Receiver {
    pub fn start() -> Self {
        Self::listen(TcpListener::bind("127.0.0.1:0").expect("a port"))
    }

    /// On a port chosen earlier (an endpoint that was down comes up).
    pub fn start_on(port: u16) -> Self {
        Self::listen(TcpListener::bind(("127.0.0.1", port)).expect("the port is free again"))
    }

    fn listen(listener: TcpListener) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let shared = web::Data::from(inbox.clone());
        let server = LocalServer::serve(listener, move |cfg| {
            cfg.app_data(shared.clone())
                .route("/hook", web::post().to(hook));
        });
        Receiver {
            port: server.port,
            inbox,
            server,
        }
    }

    pub fn url(&self) -> String {
        url_on(self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().received.clone()
    }

    /// The requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.status < 300)
            .collect()
    }

    pub fn fail_next(&self, count: u32) {
        self.inbox.lock().unwrap().failures_left = count;
    }

    pub fn answer_after(&self, delay: Duration) {
        self.inbox.lock().unwrap().delay = delay;
    }

    pub fn most_in_flight(&self) -> usize {
        self.inbox.lock().unwrap().most_in_flight
    }

    /// Waits until `count` requests were answered with a 2xx, and returns them.
    pub async fn wait_for_delivered(&self, count: usize) -> Vec<Received> {
        eventually(
            &format!("{count} deliveries at {}", self.url()),
            async || {
                let delivered = self.delivered();
                (delivered.len() >= count).then_some(delivered)
            },
        )
        .await
    }

    pub async fn stop(&self) {
        self.server.stop().await;
    }
}

fn url_on(port: u16) -> String {
    format!("http://127.0.0.1:{port}/hook")
}

/// Polls `check` until it answers (up to 30 s, far beyond any wait the settings make).
async fn eventually<T>(what: &str, check: impl AsyncFn() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The receiver's own check of a message: the Standard Webhooks signature under `secret`, the
/// headers, and a body whose `id` is the message id.
fn assert_signed(received: &Received, secret: &str) {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", received.id, received.timestamp, received.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert!(
        received.signature.split(' ').any(|s| s == expected),
        "signature {:?}, expected {expected}",
        received.signature
    );
    let sent_at: i64 = received.timestamp.parse().expect("Unix seconds");
    assert!(
        (chrono::Utc::now().timestamp() - sent_at).abs() < 300,
        "a fresh timestamp"
    );
    assert_eq!(received.content_type, "application/json");
    assert_eq!(received.json()["id"], received.id.as_str());
}

fn signed_by(received: &Received, secret: &str) -> bool {
    std::panic::catch_unwind(|| assert_signed(received, secret)).is_ok()
}

/// Quick retries: the first wait is a second (with jitter), and so is every later one.
fn quick_retries(settings: &mut authd::config::Settings) {
    settings.webhooks.backoff_base_seconds = 1;
    settings.webhooks.backoff_max_seconds = 1;
}

impl TestApp {
    /// `POST /admin/webhooks` with a body it must refuse: the 400 `validation_failed`.
    async fn refused_webhook(&self, admin: &str, body: Value) -> Value {
        let response = self
            .authed(Method::POST, "/admin/webhooks", admin, Some(body))
            .await;
        assert_error(response, 400, "validation_failed").await
    }

    /// `POST /admin/webhooks`: the endpoint's id and its secret (shown this once).
    async fn register_webhook(&self, admin: &str, url: &str, events: &[&str]) -> (Uuid, String) {
        let body = json!({ "url": url, "events": events, "description": "test receiver" });
        let response = self
            .authed(Method::POST, "/admin/webhooks", admin, Some(body))
            .await;
        assert_eq!(response.status().as_u16(), 201, "endpoint registered");
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["url"], url);
        assert_eq!(created["source"], "api");
        assert_eq!(created["enabled"], true);
        let secret = created["secret"].as_str().expect("the secret").to_string();
        (created["id"].as_str().unwrap().parse().unwrap(), secret)
    }

    /// An admin, a receiver that fails its first `failures` requests, subscribed to
    /// `login_failed`, and one failed login on its way to it.
    async fn failed_login_sent_to_a_receiver_failing(&self, failures: u32) -> FailedLoginSent {
        let admin = self.admin().await;
        let receiver = Receiver::start();
        receiver.fail_next(failures);
        let (endpoint, secret) = self
            .register_webhook(&admin.access_token, &receiver.url(), &["login_failed"])
            .await;
        let user = self.account().await;
        self.assert_login_refused(&user.email, "wrong").await;
        FailedLoginSent {
            admin,
            receiver,
            endpoint,
            secret,
        }
    }

    /// The endpoint's delivery log, newest first (one page of up to 200).
    async fn deliveries(&self, admin: &str, endpoint: Uuid) -> Vec<Value> {
        let path = format!("/admin/webhooks/{endpoint}/deliveries?limit=200");
        let page = self.get_json(&path, admin).await;
        page["deliveries"].as_array().expect("deliveries").clone()
    }

    /// Waits until the endpoint's log holds `count` deliveries that `done` accepts.
    async fn wait_for_deliveries(
        &self,
        admin: &str,
        endpoint: Uuid,
        count: usize,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        eventually(what, async || {
            let log = self.deliveries(admin, endpoint).await;
            (log.len() == count && log.iter().all(&done)).then_some(log)
        })
        .await
    }

    /// Waits until `endpoint` has `count` deliveries, all sent.
    async fn wait_for_sent(
        &self,
        admin: &str,
        endpoint: Uuid,
        count: usize,
        what: &str,
    ) -> Vec<Value> {
        self.wait_for_deliveries(admin, endpoint, count, what, |d| d["status"] == "sent")
            .await
    }
}

struct FailedLoginSent {
    admin: Account,
    receiver: Receiver,
    endpoint: Uuid,
    secret: String,
}

fn time_of(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp")).expect("RFC 3339")
}

/// Each audited action reaches the endpoints subscribed to its kind, and no other: signup,
/// login, a failed login, a session ended, a password change, MFA turned on, the account
/// deleted. Every message is signed under its own endpoint's secret and says who, from where,
/// under which request, without a token or a secret.
async fn events_reach_the_endpoints_subscribed_to_their_kind_signed(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let (everything, only_failures) = (Receiver::start(), Receiver::start());
    let kinds = [
        "signup",
        "login_succeeded",
        "login_failed",
        "session_revoked",
        "password_changed",
        "mfa_enabled",
        "account_deleted",
    ];
    let (wide, wide_secret) = app
        .register_webhook(&admin.access_token, &everything.url(), &kinds)
        .await;
    let (narrow, narrow_secret) = app
        .register_webhook(&admin.access_token, &only_failures.url(), &["login_failed"])
        .await;

    let user = app.account().await;
    let token = user.access_token.clone();
    let login = app.login(&user.email, PASSWORD).await;
    assert_eq!(login.status().as_u16(), 200);
    let other_refresh = refresh_cookie(login.headers()).unwrap();
    app.assert_login_refused(&user.email, "not the password")
        .await;
    let sessions: Vec<Value> = app
        .get("/auth/sessions", &token)
        .await
        .json()
        .await
        .unwrap();
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let ended = app
        .delete(
            &format!("/auth/sessions/{}", other["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(ended.status().as_u16(), 204);
    let new_password = "a brand new passphrase for webhooks";
    let changed = app.change_password(&token, PASSWORD, new_password).await;
    assert_eq!(changed.status().as_u16(), 200);
    let (_, confirmed) = app.enrol_totp(&token).await;
    let strong = confirmed["accessToken"].as_str().unwrap();
    let deleted = app.delete_account(strong, new_password).await;
    assert_eq!(deleted.status().as_u16(), 204);

    let messages = everything.wait_for_delivered(kinds.len()).await;
    let mut types: Vec<String> = messages
        .iter()
        .map(|m| m.json()["type"].as_str().unwrap().to_string())
        .collect();
    types.sort();
    let mut expected: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(types, expected, "one message per action, of its kind");
    let ids: BTreeSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), kinds.len(), "each message has its own id");
    for message in &messages {
        assert_signed(message, &wide_secret);
        assert!(
            !signed_by(message, &narrow_secret),
            "not under another endpoint's secret"
        );
        let body = message.json();
        assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
        let data = &body["data"];
        assert_eq!(data["userId"], user.user_id.to_string(), "{body}");
        assert_eq!(data["ip"], "127.0.0.1");
        assert!(data["requestId"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(data["details"].is_object());
        for secret in [
            user.access_token.as_str(),
            user.refresh_token.as_str(),
            other_refresh.as_str(),
            PASSWORD,
            new_password,
            strong,
            "whsec_",
        ] {
            assert!(
                !message.body.contains(secret),
                "{} leaks a secret",
                message.body
            );
        }
    }
    let wide_log = app.deliveries(&admin.access_token, wide).await;
    assert_eq!(
        wide_log.len(),
        kinds.len(),
        "nothing queued for other kinds"
    );

    let failures = only_failures.wait_for_delivered(1).await;
    assert_eq!(failures[0].json()["type"], "login_failed");
    assert_signed(&failures[0], &narrow_secret);
    let narrow_log = app.deliveries(&admin.access_token, narrow).await;
    assert_eq!(
        narrow_log.len(),
        1,
        "only the kind it subscribed to: {narrow_log:?}"
    );
    assert_eq!(narrow_log[0]["eventType"], "login_failed");
    assert_eq!(narrow_log[0]["status"], "sent");
    let sent = &narrow_log[0];
    assert!(
        time_of(&sent["nextAttemptAt"]) <= time_of(&sent["deliveredAt"]),
        "{sent}"
    );
    assert_eq!(narrow_log[0]["eventId"], failures[0].id.as_str());
    // One event, one message id, whichever endpoint receives it.
    let failed_at_wide = messages
        .iter()
        .find(|m| m.json()["type"] == "login_failed")
        .unwrap();
    assert_eq!(failed_at_wide.id, failures[0].id);
    assert_eq!(failed_at_wide.body, failures[0].body);
}

/// An endpoint that answers 500 gets the same message again (same id, same body, signed anew)
/// after a backoff, until it answers 2xx: at least once.
async fn a_failing_endpoint_gets_the_same_message_again_until_it_answers(backend: Backend) {
    let app = spawn_app_with(backend, quick_retries).await;
    let FailedLoginSent {
        admin,
        receiver,
        endpoint,
        secret,
    } = app.failed_login_sent_to_a_receiver_failing(2).await;

    // After the first failure: pending, one attempt, the answer noted, the next one later.
    let log = app
        .wait_for_deliveries(&admin.access_token, endpoint, 1, "a first failure", |d| {
            d["attempts"] == 1 && d["lastStatus"] == 500
        })
        .await;
    let first = &log[0];
    assert_eq!(first["status"], "pending");
    assert!(
        first["lastError"].as_str().unwrap().contains("500"),
        "{first}"
    );
    assert!(first["deliveredAt"].is_null());
    let backoff = time_of(&first["nextAttemptAt"]) - time_of(&first["createdAt"]);
    assert!(
        backoff >= chrono::Duration::milliseconds(700),
        "the retry waits the backoff (1 s, jitter 20%): {first}"
    );

    let delivered = receiver.wait_for_delivered(1).await;
    let attempts = receiver.received();
    assert_eq!(attempts.len(), 3, "two failures, then the delivery");
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [500, 500, 204]
    );
    for attempt in &attempts {
        assert_eq!(
            attempt.id, delivered[0].id,
            "the same message id at every attempt"
        );
        assert_eq!(
            attempt.body, delivered[0].body,
            "the same body at every attempt"
        );
        assert_signed(attempt, &secret);
    }
    let log = app
        .wait_for_sent(&admin.access_token, endpoint, 1, "the delivery recorded")
        .await;
    let sent = &log[0];
    assert_eq!(sent["attempts"], 3);
    assert_eq!(sent["lastStatus"], 204);
    assert!(sent["lastError"].is_null());
    assert!(time_of(&sent["deliveredAt"]) >= time_of(&sent["createdAt"]));
    assert_eq!(sent["eventId"], delivered[0].id.as_str());
    assert_eq!(sent["payload"], delivered[0].json());
}

/// An endpoint that is down (nothing listens on its port) loses nothing and slows nothing:
/// every request to authd is answered as usual, the deliveries wait in the queue with the
/// connection error, and all of them arrive once the endpoint comes up.
async fn an_endpoint_that_is_down_loses_nothing_and_fails_no_request(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        quick_retries(s);
        s.webhooks.max_attempts = 1000;
    })
    .await;
    let admin = app.admin().await;
    let port = free_port();
    let (endpoint, secret) = app
        .register_webhook(
            &admin.access_token,
            &url_on(port),
            &["signup", "login_succeeded", "login_failed"],
        )
        .await;

    let mut events = 0;
    for _ in 0..4 {
        let user = app.account().await;
        app.assert_login_works(&user.email, PASSWORD).await;
        app.assert_login_refused(&user.email, "wrong").await;
        assert_eq!(app.me(&user.access_token).await.status().as_u16(), 200);
        events += 3;
    }
    let waiting = app
        .wait_for_deliveries(
            &admin.access_token,
            endpoint,
            events,
            "every delivery tried and refused",
            // Claiming counts the attempt; its refusal is recorded a moment later.
            |d| d["status"] == "pending" && d["lastError"].is_string(),
        )
        .await;
    for delivery in &waiting {
        assert!(delivery["lastStatus"].is_null(), "no answer: {delivery}");
        let error = delivery["lastError"].as_str().unwrap();
        assert!(error.to_lowercase().contains("connect"), "{error}");
    }
    // The gauge is process-wide (other tests' apps set it too): present, not a value.
    let scrape = app.fetch("/metrics").await.text().await.unwrap();
    assert!(
        scrape.contains("authd_webhook_queue_depth "),
        "the queue depth"
    );

    let receiver = Receiver::start_on(port);
    let arrived = receiver.wait_for_delivered(events).await;
    let arrived_ids: BTreeSet<String> = arrived.iter().map(|m| m.id.clone()).collect();
    let queued_ids: BTreeSet<String> = waiting
        .iter()
        .map(|d| d["eventId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(arrived_ids, queued_ids, "every queued event arrived");
    for message in &arrived {
        assert_signed(message, &secret);
    }
    app.wait_for_sent(&admin.access_token, endpoint, events, "all sent")
        .await;
    receiver.stop().await;
}

/// An endpoint that accepts the connection and never answers costs an attempt its timeout, on
/// the dispatcher alone: requests meanwhile are answered as usual.
async fn an_endpoint_that_hangs_times_out_and_blocks_no_request(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        quick_retries(s);
        s.webhooks.request_timeout_ms = 300;
    })
    .await;
    let admin = app.admin().await;
    let receiver = Receiver::start();
    receiver.answer_after(Duration::from_secs(3600));
    let (endpoint, _) = app
        .register_webhook(&admin.access_token, &receiver.url(), &["signup"])
        .await;
    let user = app.account().await;
    let log = app
        .wait_for_deliveries(
            &admin.access_token,
            endpoint,
            1,
            "a timed-out attempt",
            |d| {
                d["lastError"]
                    .as_str()
                    .is_some_and(|e| e.contains("no answer within 300 ms"))
            },
        )
        .await;
    assert_eq!(log[0]["status"], "pending");
    for _ in 0..3 {
        app.assert_login_works(&user.email, PASSWORD).await;
        app.assert_login_refused(&user.email, "wrong").await;
        assert_eq!(app.me(&user.access_token).await.status().as_u16(), 200);
    }
    receiver.answer_after(Duration::ZERO);
    let delivered = receiver.wait_for_delivered(1).await;
    assert_eq!(delivered[0].json()["type"], "signup");
    assert_eq!(
        delivered[0].json()["data"]["userId"],
        user.user_id.to_string()
    );
}

/// After `webhooks.max_attempts` failures a delivery is dead, and the admin's delivery log says
/// why; a retry queues it again (a dead one only) and it arrives under the same id.
async fn a_dead_delivery_shows_in_the_log_and_a_retry_sends_it_again(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        quick_retries(s);
        s.webhooks.max_attempts = 2;
    })
    .await;
    let FailedLoginSent {
        admin,
        receiver,
        endpoint,
        secret,
    } = app.failed_login_sent_to_a_receiver_failing(u32::MAX).await;

    let log = app
        .wait_for_deliveries(&admin.access_token, endpoint, 1, "a dead delivery", |d| {
            d["status"] == "dead"
        })
        .await;
    let dead = &log[0];
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["lastStatus"], 500);
    assert!(
        dead["lastError"].as_str().unwrap().contains("500"),
        "{dead}"
    );
    assert!(dead["deliveredAt"].is_null());
    // When it was given up, not the lease its last attempt held: no attempt is to come.
    let now = chrono::Utc::now();
    assert!(time_of(&dead["nextAttemptAt"]) <= now, "{dead}");
    assert_eq!(receiver.received().len(), 2, "two attempts, no more");
    let delivery = dead["id"].as_str().unwrap();
    let retry_path = format!("/admin/webhooks/{endpoint}/deliveries/{delivery}/retry");

    let scrape = app.fetch("/metrics").await.text().await.unwrap();
    for line in [
        "authd_webhook_deliveries_total{outcome=\"dead\"}",
        "authd_webhook_deliveries_total{outcome=\"retry\"}",
        "authd_webhook_request_duration_seconds_count",
        "authd_webhook_queue_depth",
    ] {
        assert!(scrape.contains(line), "{line} in the metrics");
    }

    receiver.fail_next(0);
    let retried = app
        .authed(Method::POST, &retry_path, &admin.access_token, None)
        .await;
    assert_eq!(retried.status().as_u16(), 200);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["id"], delivery);
    assert!(
        retried["status"] == "pending" || retried["status"] == "sent",
        "{retried}"
    );
    let again = app
        .authed(Method::POST, &retry_path, &admin.access_token, None)
        .await;
    assert_error(again, 409, "delivery_not_dead").await;

    let delivered = receiver.wait_for_delivered(1).await;
    assert_eq!(delivered[0].id, dead["eventId"].as_str().unwrap());
    assert_signed(&delivered[0], &secret);
    app.wait_for_deliveries(
        &admin.access_token,
        endpoint,
        1,
        "sent after the retry",
        |d| d["status"] == "sent" && d["attempts"] == 1,
    )
    .await;
    let unknown = format!(
        "/admin/webhooks/{endpoint}/deliveries/{}/retry",
        Uuid::new_v4()
    );
    let response = app
        .authed(Method::POST, &unknown, &admin.access_token, None)
        .await;
    assert_error(response, 404, "not_found").await;
}

/// Many deliveries at once never have more than `webhooks.max_concurrency` requests in flight
/// (the receiver counts them), and all of them arrive.
async fn deliveries_respect_the_concurrency_bound(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.webhooks.max_concurrency = 2).await;
    let admin = app.admin().await;
    let receiver = Receiver::start();
    // Slow enough that the next signup is queued while the first is still being answered.
    receiver.answer_after(Duration::from_secs(1));
    app.register_webhook(&admin.access_token, &receiver.url(), &["signup"])
        .await;
    for _ in 0..6 {
        app.account().await;
    }
    let delivered = receiver.wait_for_delivered(6).await;
    assert_eq!(delivered.len(), 6);
    assert_eq!(
        receiver.most_in_flight(),
        2,
        "up to the bound, never past it"
    );
}

/// An authd that refuses private targets, with one configured endpoint by name
/// (`http://localhost:<port>/hook`) and then `customize`; returned once the endpoint's first
/// delivery failed because the name resolves to no public address.
async fn endpoint_by_name_refused(
    backend: Backend,
    port: u16,
    customize: impl FnOnce(&mut authd::config::Settings),
) -> TestApp {
    let by_name = format!("http://localhost:{port}/hook");
    let app = spawn_app_with(backend, |s| {
        s.webhooks.allow_insecure_targets = true;
        s.webhooks.allow_private_targets = false;
        s.webhooks.endpoints = vec![authd::config::WebhookEndpointSettings {
            url: by_name,
            secret: authd::config::Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            events: vec!["signup".into()],
            description: "by name".into(),
        }];
        customize(s);
    })
    .await;
    let admin = app.admin().await;
    let endpoints = app.get_json("/admin/webhooks", &admin.access_token).await;
    let endpoint = &endpoints["endpoints"][0];
    assert_eq!(endpoint["source"], "config");
    let id: Uuid = endpoint["id"].as_str().unwrap().parse().unwrap();
    let log = app
        .wait_for_deliveries(&admin.access_token, id, 1, "a refused target", |d| {
            d["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("no public address"))
        })
        .await;
    assert_eq!(log[0]["status"], "pending");
    app
}

/// Targets must be https to a public address unless allowed: refused at registration (the
/// address as written, or as the name resolves), and at every connection for a configured
/// endpoint whose name resolves to loopback.
async fn private_and_insecure_targets_are_refused_unless_allowed(backend: Backend) {
    let strict = spawn_app_with(backend, |s| {
        s.webhooks.allow_insecure_targets = false;
        s.webhooks.allow_private_targets = false;
    })
    .await;
    let admin = strict.admin().await;
    for (url, reason) in [
        ("http://hooks.example.com/authd", "https"),
        ("https://127.0.0.1:9/hook", "public"),
        ("https://[::1]:9/hook", "public"),
        ("https://169.254.169.254/latest/meta-data", "public"),
        ("https://10.0.0.8/hook", "public"),
        ("https://localhost:9/hook", "no public address"),
    ] {
        let body = json!({ "url": url, "events": ["signup"] });
        let error = strict.refused_webhook(&admin.access_token, body).await;
        assert_eq!(error["details"][0]["field"], "url", "{url}: {error}");
        let message = error["details"][0]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{url}: {message}");
    }

    // A configured endpoint by name: the name passes the configuration's check, its address is
    // refused when the dispatcher connects.
    let receiver = Receiver::start();
    let configured = endpoint_by_name_refused(backend, receiver.port, |_| {}).await;
    assert!(receiver.received().is_empty(), "nothing reached loopback");

    // The configuration's own check: an address it can judge as written.
    let mut settings = configured.settings.clone();
    settings.webhooks.endpoints[0].url = format!("http://127.0.0.1:{}/hook", receiver.port);
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("webhooks.endpoints[0].url"), "{error}");
}

/// A forward HTTP proxy on 127.0.0.1, as an egress proxy is: it takes each request in absolute
/// form (`POST http://host:port/path`), sends it on to that target and answers with the target's
/// status; it keeps the URLs it passed on.
struct ForwardProxy {
    forwarded: Arc<Mutex<Vec<String>>>,
    server: LocalServer,
}

async fn forward(
    req: HttpRequest,
    body: web::Bytes,
    forwarded: web::Data<Mutex<Vec<String>>>,
) -> HttpResponse {
    let target = req.uri().to_string();
    forwarded.lock().unwrap().push(target.clone());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut onward = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(method, &target)
        .body(body.to_vec());
    for (name, value) in req.headers() {
        if name.as_str() != "host" && !name.as_str().starts_with("proxy-") {
            onward = onward.header(name.as_str(), value.as_bytes());
        }
    }
    match onward.send().await {
        Ok(answer) => {
            HttpResponse::build(StatusCode::from_u16(answer.status().as_u16()).unwrap()).finish()
        }
        Err(_) => HttpResponse::BadGateway().finish(),
    }
}

impl ForwardProxy {
    fn start() -> Self {
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let shared = web::Data::from(forwarded.clone());
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let server = LocalServer::serve(listener, move |cfg| {
            cfg.app_data(shared.clone())
                .default_service(web::to(forward));
        });
        ForwardProxy { forwarded, server }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().unwrap().clone()
    }
}

/// With `webhooks.proxy_url`, deliveries go through the proxy and arrive signed; the proxy
/// resolves the targets, so authd checks each target's address itself first: a name that
/// resolves to loopback is refused before anything reaches the proxy.
async fn deliveries_go_through_the_configured_proxy(backend: Backend) {
    let proxy = ForwardProxy::start();
    let proxy_url = authd::config::ConnectionUrl::new(proxy.url());
    let app = spawn_app_with(backend, |s| s.webhooks.proxy_url = proxy_url.clone()).await;
    let admin = app.admin().await;
    let receiver = Receiver::start();
    let (_, secret) = app
        .register_webhook(&admin.access_token, &receiver.url(), &["signup"])
        .await;
    app.account().await;
    let delivered = receiver.wait_for_delivered(1).await;
    assert_signed(&delivered[0], &secret);
    assert_eq!(proxy.forwarded(), [receiver.url()], "through the proxy");

    endpoint_by_name_refused(backend, receiver.port, |s| s.webhooks.proxy_url = proxy_url).await;
    assert_eq!(proxy.forwarded().len(), 1, "nothing more reached the proxy");
}

/// Only unlocked admins manage webhooks; the secret is shown once; bad input names its field;
/// an endpoint of the configuration is removed there, and one that leaves the configuration is
/// disabled at the next start (nothing more is queued for it); webhooks off is 404
/// `feature_disabled`.
async fn the_admin_api_needs_an_admin_and_follows_the_configuration(backend: Backend) {
    let receiver = Receiver::start();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut app = spawn_app_with(backend, |s| {
        s.webhooks.endpoints = vec![authd::config::WebhookEndpointSettings {
            url: receiver.url(),
            secret: authd::config::Secret::new(secret),
            events: vec!["signup".into()],
            description: String::new(),
        }];
    })
    .await;
    let user = app.account().await;
    let some = Uuid::new_v4();
    let calls = [
        (Method::GET, "/admin/webhooks".to_string()),
        (Method::POST, "/admin/webhooks".to_string()),
        (Method::DELETE, format!("/admin/webhooks/{some}")),
        (Method::GET, format!("/admin/webhooks/{some}/deliveries")),
        (
            Method::POST,
            format!("/admin/webhooks/{some}/deliveries/{some}/retry"),
        ),
    ];
    for (method, path) in &calls {
        let body =
            (*method == Method::POST).then(|| json!({ "url": receiver.url(), "events": ["*"] }));
        let response = app
            .authed(method.clone(), path, &user.access_token, body)
            .await;
        assert_error(response, 403, "forbidden").await;
        let response = app.anonymous(method.clone(), path).await;
        assert_error(response, 401, "unauthorized").await;
    }

    let admin = app.admin().await;
    // The configured endpoint got the signups after it was stored (the user's, the admin's).
    let configured_messages = receiver.wait_for_delivered(2).await;
    for message in &configured_messages {
        assert_signed(message, secret);
    }
    // A receiver's token in the URL (here its query string) is the admins' to see in the endpoint
    // list; everywhere else (the audit event, the events sent to receivers) the URL is its origin.
    let tokened_url = format!("{}?token=receiver-token", receiver.url());
    let (id, created_secret) = app
        .register_webhook(&admin.access_token, &tokened_url, &["*"])
        .await;
    assert!(created_secret.starts_with("whsec_"));
    let audited = app.get_json("/admin/events", &admin.access_token).await;
    let created_event = audited["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "admin_webhook_created")
        .expect("the registration is audited")
        .clone();
    let origin = url::Url::parse(&receiver.url())
        .unwrap()
        .origin()
        .ascii_serialization();
    let shown = format!("{origin}/***");
    assert_eq!(created_event["details"]["url"], shown.as_str());
    // An admin's action: the admin is its actor, and it is about no account.
    assert_eq!(created_event["actorId"], admin.user_id.to_string());
    assert!(created_event["userId"].is_null());
    let listed = app.get_json("/admin/webhooks", &admin.access_token).await;
    let listed = listed["endpoints"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    assert!(
        !listed.iter().any(|e| e.to_string().contains("whsec_")),
        "never shown again"
    );
    let configured = listed.iter().find(|e| e["source"] == "config").unwrap();
    assert_eq!(configured["events"], json!(["signup"]));
    let configured_id = configured["id"].as_str().unwrap().to_string();
    let api = listed.iter().find(|e| e["source"] == "api").unwrap();
    assert_eq!(api["events"], json!(["*"]));
    assert_eq!(api["description"], "test receiver");

    for (body, field) in [
        (
            json!({ "url": receiver.url(), "events": ["sign_up"] }),
            "events",
        ),
        (json!({ "url": receiver.url(), "events": [] }), "events"),
        (json!({ "url": "not a url", "events": ["signup"] }), "url"),
        (
            json!({ "url": receiver.url(), "events": ["signup"], "description": "ok\u{202E}evil" }),
            "description",
        ),
        (json!({ "events": ["signup"] }), "url"),
    ] {
        let error = app.refused_webhook(&admin.access_token, body).await;
        assert_eq!(error["details"][0]["field"], field, "{error}");
    }
    let path = format!("/admin/webhooks/{configured_id}");
    let refused = app.delete(&path, &admin.access_token).await;
    assert_error(refused, 409, "endpoint_configured").await;
    let deliveries = format!("/admin/webhooks/{some}/deliveries");
    assert_error(
        app.get(&deliveries, &admin.access_token).await,
        404,
        "not_found",
    )
    .await;
    let bad_cursor = format!("/admin/webhooks/{id}/deliveries?cursor=junk");
    assert_error(
        app.get(&bad_cursor, &admin.access_token).await,
        400,
        "validation_failed",
    )
    .await;

    // The "*" endpoint receives every kind: its own registration (audited once it exists),
    // then a signup.
    app.account().await;
    let everything = app
        .wait_for_sent(&admin.access_token, id, 2, "the * endpoint's deliveries")
        .await;
    let kinds: BTreeSet<&str> = everything
        .iter()
        .map(|d| d["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["admin_webhook_created", "signup"]));
    let sent = receiver.received();
    assert!(
        !sent.iter().any(|r| r.body.contains("receiver-token")),
        "the token is not sent to receivers"
    );
    let actor = format!(r#""actorId":"{}""#, admin.user_id);
    assert!(
        sent.iter()
            .any(|r| r.body.contains("admin_webhook_created") && r.body.contains(&actor)),
        "the registration's message names its admin"
    );
    let removed = app
        .delete(&format!("/admin/webhooks/{id}"), &admin.access_token)
        .await;
    assert_eq!(removed.status().as_u16(), 204);
    let gone = app
        .delete(&format!("/admin/webhooks/{id}"), &admin.access_token)
        .await;
    assert_error(gone, 404, "not_found").await;
    let events = app.get_json("/admin/events", &admin.access_token).await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"admin_webhook_created") && kinds.contains(&"admin_webhook_deleted"));

    // The endpoint leaves the configuration: disabled at the next start, nothing queued for it;
    // then it may be deleted.
    app.settings.webhooks.endpoints.clear();
    app.restart().await;
    let listed = app.get_json("/admin/webhooks", &admin.access_token).await;
    assert_eq!(listed["endpoints"][0]["id"], configured_id.as_str());
    assert_eq!(listed["endpoints"][0]["enabled"], false);
    let configured_id: Uuid = configured_id.parse().unwrap();
    let before = app
        .deliveries(&admin.access_token, configured_id)
        .await
        .len();
    app.account().await;
    assert_eq!(
        app.deliveries(&admin.access_token, configured_id)
            .await
            .len(),
        before,
        "nothing queued for a disabled endpoint"
    );
    let removed = app.delete(&path, &admin.access_token).await;
    assert_eq!(removed.status().as_u16(), 204);

    let off = spawn_app_with(backend, |s| s.webhooks.enabled = false).await;
    let admin = off.admin().await;
    for (method, path) in &calls {
        let body =
            (*method == Method::POST).then(|| json!({ "url": receiver.url(), "events": ["*"] }));
        let response = off
            .authed(method.clone(), path, &admin.access_token, body)
            .await;
        assert_error(response, 404, "feature_disabled").await;
    }
    receiver.stop().await;
}

crate::backend_tests!(
    events_reach_the_endpoints_subscribed_to_their_kind_signed,
    a_failing_endpoint_gets_the_same_message_again_until_it_answers,
    an_endpoint_that_is_down_loses_nothing_and_fails_no_request,
    an_endpoint_that_hangs_times_out_and_blocks_no_request,
    a_dead_delivery_shows_in_the_log_and_a_retry_sends_it_again,
    deliveries_respect_the_concurrency_bound,
    private_and_insecure_targets_are_refused_unless_allowed,
    the_admin_api_needs_an_admin_and_follows_the_configuration,
    deliveries_go_through_the_configured_proxy,
);
