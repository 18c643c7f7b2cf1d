//! What operators and integrators read off a running authd: the OpenAPI document, Swagger UI, and
//! the Prometheus metrics.

use std::collections::BTreeSet;

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend};

/// Every route of the endpoint tables in docs/api.md (the contract and authd's additions), as
/// `(method, path)`; the operator's routes outside the API document are left out.
fn contract_routes() -> BTreeSet<(String, String)> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md"),
    )
    .expect("docs/api.md");
    let mut routes = BTreeSet::new();
    for line in doc.lines() {
        let Some(cell) = line.strip_prefix("| ").and_then(|l| l.split(" |").next()) else {
            continue;
        };
        let Some((methods, paths)) = cell.split_once(' ') else {
            continue;
        };
        if !methods
            .split('/')
            .all(|m| METHODS.contains(&m.to_lowercase().as_str()))
        {
            continue;
        }
        for path in paths.split(", ") {
            if path == "/metrics" || path == "/openapi.json" {
                continue;
            }
            for method in methods.split('/') {
                routes.insert((method.to_lowercase(), path.to_string()));
            }
        }
    }
    routes
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// docs/api.md holds the shared contract unchanged above authd's additions (what authd says
/// beyond it goes there). Compared where the shared folder sits beside the repository, as in CI;
/// a clone on its own has nothing to compare with.
#[test]
fn the_copy_of_the_contract_is_the_shared_file_unchanged() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(shared) = std::fs::read_to_string(root.join("../shared/design/api.md")) else {
        eprintln!("no ../shared/design/api.md beside the repository: nothing to compare");
        return;
    };
    let copy = std::fs::read_to_string(root.join("docs/api.md")).expect("docs/api.md");
    let start = copy
        .find("# authd REST API: the contract")
        .expect("the contract's title");
    let end = copy
        .find("## authd's additions to the contract")
        .expect("the additions' heading");
    assert_eq!(copy[start..end].trim_end(), shared.trim_end());
}

fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                found.insert((method.to_string(), path.clone()));
            }
        }
    }
    found
}

async fn fetch_document(app: &crate::helpers::TestApp) -> Value {
    let response = app.fetch("/openapi.json").await;
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

/// Routes are registered and documented by the same call, so they cannot drift apart; this test
/// checks it from outside: the document holds exactly the contract's routes, each documented
/// operation is served (never the framework's 404/405), and each documented path refuses every
/// undocumented method with 405.
async fn the_openapi_document_matches_the_served_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = fetch_document(&app).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));

    let documented = operations(&document);
    let contract = contract_routes();
    assert!(contract.len() > 30, "the tables were read: {contract:?}");
    assert_eq!(documented, contract, "documented vs docs/api.md routes");

    let id = Uuid::new_v4().to_string();
    for (method, path) in &documented {
        let url = app.url(&path.replace("{id}", &id).replace("{provider}", "none"));
        let request = app
            .client
            .request(method.to_uppercase().parse().unwrap(), &url)
            .header("Content-Type", "application/json");
        let request = if method == "get" {
            request
        } else {
            request.body("{}")
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let code = body["code"].as_str().unwrap_or("");
        assert!(
            !matches!(code, "not_found" | "method_not_allowed") || path.contains('{'),
            "{method} {path} is documented but not served: {status} {body}"
        );
        assert_ne!(status, 405, "{method} {path}");
        assert!(status < 500, "{method} {path}: {status} {body}");
    }
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in METHODS {
            if documented.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let method = method.to_uppercase().parse().unwrap();
            let concrete = path.replace("{id}", &id).replace("{provider}", "none");
            let response = app.anonymous(method, &concrete).await;
            assert_error(response, 405, "method_not_allowed").await;
        }
    }
}

/// Every error a documented operation can answer is described, with the one error shape.
async fn the_document_describes_errors_and_security(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = fetch_document(&app).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["refresh_cookie"]["in"], "cookie");
    assert_eq!(schemes["refresh_cookie"]["name"], "refresh_token");
    let error = &document["components"]["schemas"]["ApiError"];
    for field in [
        "error",
        "code",
        "statusCode",
        "requestId",
        "timestamp",
        "details",
    ] {
        assert!(error["properties"].get(field).is_some(), "ApiError.{field}");
    }
    let me = &document["paths"]["/me"]["get"];
    assert!(me["security"].to_string().contains("bearer"));
    for status in ["200", "401", "429", "500", "503"] {
        assert!(me["responses"].get(status).is_some(), "GET /me {status}");
    }
    let login = &document["paths"]["/auth/login"]["post"];
    for status in ["200", "401", "413", "415", "429"] {
        assert!(login["responses"].get(status).is_some(), "login {status}");
    }
    // Generated clients name their functions after operation ids: each is unique.
    let mut ids = BTreeSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for method in METHODS {
            if let Some(id) = item[method]["operationId"].as_str() {
                assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            }
        }
    }
    let signup = &document["components"]["schemas"]["SignupRequest"];
    let required: Vec<&str> = signup["required"]
        .as_array()
        .expect("required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(required.contains(&"email") && required.contains(&"password"));
}

async fn swagger_ui_is_served_with_its_assets_and_can_be_turned_off(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.fetch("/docs").await;
    assert!(response.status().is_redirection());
    let page = app.fetch("/docs/").await;
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Assets come from the binary, not a CDN.
    assert!(!html.contains("https://"), "no external assets: {html}");
    let script = app.fetch("/docs/swagger-ui-bundle.js").await;
    assert_eq!(script.status().as_u16(), 200);

    let off = spawn_app_with(backend, |s| s.http.docs_enabled = false).await;
    for path in ["/openapi.json", "/docs/"] {
        let response = off.fetch(path).await;
        assert_error(response, 404, "not_found").await;
    }
}

fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            line.starts_with(name)
                && line[name.len()..].starts_with(['{', ' '])
                && labels.iter().all(|l| line.contains(l))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(app: &crate::helpers::TestApp) -> String {
    let response = app.fetch("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    response.text().await.unwrap()
}

async fn metrics_count_requests_hashing_and_reuse(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.tokens.refresh_reuse_grace_seconds = 0).await;
    let account = app.account().await;
    assert_eq!(app.me(&account.access_token).await.status().as_u16(), 200);
    let first = app.refresh_with_cookie(&account.refresh_token).await;
    assert_eq!(first.status().as_u16(), 200);
    // Replayed with no grace window: reuse.
    let reuse = app.refresh_with_cookie(&account.refresh_token).await;
    assert_error(reuse, 401, "refresh_token_reused").await;
    let wrong = app.login(&account.email, "not the password").await;
    assert_eq!(wrong.status().as_u16(), 401);
    // A made-up method is counted, under `other`: the client's token never becomes a label.
    let invented = reqwest::Method::from_bytes(b"INVENTEDMETHODXYZ").unwrap();
    let response = app.anonymous(invented, "/health/live").await;
    assert_eq!(response.status().as_u16(), 405);

    let text = scrape(&app).await;
    assert!(!text.contains("INVENTEDMETHODXYZ"), "{text}");
    assert!(sample(&text, "authd_http_requests_total", &["method=\"other\""]).is_some());
    // The metrics recorder is process-wide and other tests run beside this one: assert presence
    // and lower bounds, never exact totals.
    let me = sample(
        &text,
        "authd_http_requests_total",
        &["route=\"/me\"", "method=\"GET\"", "status=\"200\""],
    );
    assert!(me.unwrap_or(0.0) >= 1.0, "{text}");
    assert!(
        !text.contains(&account.user_id.to_string()),
        "ids never become labels"
    );
    for (name, labels) in [
        (
            "authd_http_request_duration_seconds_count",
            &["route=\"/auth/login\""][..],
        ),
        ("authd_hasher_job_seconds_count", &["op=\"hash\""]),
        ("authd_hasher_job_seconds_count", &["op=\"verify\""]),
        ("authd_hasher_wait_seconds_count", &[]),
        ("authd_hasher_queue_depth", &[]),
        ("authd_hasher_in_flight", &[]),
        ("authd_hasher_capacity", &[]),
        ("authd_actor_mailbox_backlog", &["actor=\"tokens\""]),
        ("authd_mail_outbox_depth", &[]),
        ("authd_refresh_reuse_detected_total", &[]),
    ] {
        assert!(sample(&text, name, labels).is_some(), "{name} {labels:?}");
    }
    if backend == Backend::PostgresRedis {
        assert!(sample(&text, "authd_db_pool_max_connections", &[]).is_some());
        assert!(sample(&text, "authd_db_pool_connections", &["state=\"idle\""]).is_some());
    }
}

async fn metrics_are_refused_outside_the_allowed_networks_and_when_off(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.metrics.allowed_networks = vec!["10.0.0.0/8".into()];
    })
    .await;
    let response = app.fetch("/metrics").await;
    assert_error(response, 404, "not_found").await;

    // From an allowed network (loopback, by default), but passed on by a proxy authd does not
    // trust: the scrape is someone's behind it, so it is refused; without the header it is not.
    let allowed = spawn_app(backend).await;
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let value = if header == "forwarded" {
            "for=203.0.113.7"
        } else {
            "203.0.113.7"
        };
        let response = allowed
            .fetch_with_headers("/metrics", &[(header, value)])
            .await;
        assert_error(response, 404, "not_found").await;
    }
    assert_eq!(allowed.fetch("/metrics").await.status().as_u16(), 200);

    let off = spawn_app_with(backend, |s| s.metrics.enabled = false).await;
    let response = off.fetch("/metrics").await;
    assert_error(response, 404, "not_found").await;
}

/// A rate-limited request and a refused hash show up in their counters.
async fn metrics_count_refusals(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.rate_limit.auth_max = 1).await;
    for _ in 0..2 {
        app.forgot_password("x@example.com").await;
    }
    let text = scrape(&app).await;
    assert!(
        sample(
            &text,
            "authd_rate_limit_rejections_total",
            &["scope=\"ip\""]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
}

crate::backend_tests!(
    the_openapi_document_matches_the_served_routes,
    the_document_describes_errors_and_security,
    swagger_ui_is_served_with_its_assets_and_can_be_turned_off,
    metrics_count_requests_hashing_and_reuse,
    metrics_are_refused_outside_the_allowed_networks_and_when_off,
    metrics_count_refusals,
);
