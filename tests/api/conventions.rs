//! The contract's conventions: one error shape everywhere, request ids, body rules, CORS.

use serde_json::json;

use crate::helpers::{
    assert_error, refresh_cookie_line, spawn_app, spawn_app_with, Backend, PASSWORD,
};

const FRONTEND: &str = "http://localhost:3000";

async fn unknown_routes_and_wrong_methods_get_the_error_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.fetch("/no/such/route").await;
    assert_error(response, 404, "not_found").await;
    let response = app.fetch("/auth/login").await;
    let status = response.status().as_u16();
    assert!(status == 404 || status == 405, "{status}");
    let code = if status == 404 {
        "not_found"
    } else {
        "method_not_allowed"
    };
    assert_error(response, status, code).await;
}

async fn a_body_that_is_not_json_is_415(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("Content-Type", "text/plain")
        .body(r#"{"email":"a@example.com","password":"x"}"#)
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 415, "unsupported_media_type").await;
    assert!(
        body["error"].as_str().unwrap().contains("application/json"),
        "{body}"
    );
    // The one form endpoint (a provider's form post) names the type it takes.
    let response = app.post_json("/auth/oauth/any/callback", &json!({})).await;
    let body = assert_error(response, 415, "unsupported_media_type").await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("x-www-form-urlencoded"),
        "{body}"
    );
}

async fn a_body_over_the_limit_is_413(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.http.max_body_bytes = 1024).await;
    let response = app
        .post_json(
            "/auth/signup",
            &json!({ "email": "a@example.com", "password": "x".repeat(4096) }),
        )
        .await;
    assert_error(response, 413, "payload_too_large").await;
}

async fn malformed_json_is_400_with_details(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        r#"{"email": "#,
        r#"{"email": 42, "password": "x"}"#,
        "[]",
        r#"{"tokenTransport":"pigeon"}"#,
    ] {
        let response = app.post_raw_json("/auth/signup", body).await;
        let error = assert_error(response, 400, "validation_failed").await;
        assert!(
            error["details"].as_array().is_some_and(|d| !d.is_empty()),
            "{body}: {error}"
        );
    }
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let response = app.post_raw_json("/auth/login", nested).await;
    assert_error(response, 400, "validation_failed").await;
}

async fn a_plain_request_id_is_kept_and_anything_else_replaced(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .fetch_with_headers("/health/live", &[("X-Request-Id", "trace-abc.123")])
        .await;
    assert_eq!(response.headers()["x-request-id"], "trace-abc.123");
    let response = app
        .fetch_with_headers("/health/live", &[("X-Request-Id", "bad id with spaces")])
        .await;
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(id.parse::<uuid::Uuid>().is_ok(), "{id}");
}

async fn cors_admits_the_configured_origin_with_credentials_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/auth/login"))
        .header("Origin", FRONTEND)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], FRONTEND);
    assert_eq!(
        preflight.headers()["access-control-allow-credentials"],
        "true"
    );

    let refused = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/auth/login"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!refused
        .headers()
        .contains_key("access-control-allow-origin"));
    assert_error(refused, 403, "origin_not_allowed").await;

    let simple = app
        .fetch_with_headers("/health/live", &[("Origin", "https://evil.example")])
        .await;
    assert_error(simple, 403, "origin_not_allowed").await;

    // A browser that says another site sent a request that changes something, without the
    // `Origin` CORS would judge, is refused too (a refresh with the cookie, here); a read is not,
    // nor the same request from the site itself or from an app (no `Sec-Fetch-Site`).
    let account = app.account().await;
    let refresh = |site: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url("/auth/refresh"))
            .header("Cookie", format!("refresh_token={}", account.refresh_token))
            .header("Content-Type", "application/json")
            .body("{}");
        if let Some(site) = site {
            request = request.header("Sec-Fetch-Site", site);
        }
        request.send()
    };
    assert_error(
        refresh(Some("cross-site")).await.unwrap(),
        403,
        "origin_not_allowed",
    )
    .await;
    let read = app
        .fetch_with_headers("/health/live", &[("Sec-Fetch-Site", "cross-site")])
        .await;
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(
        refresh(Some("same-origin"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    // The right origin asking for what is not allowed is told which part, and what is.
    let preflight = |method: &'static str, headers: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/me"))
            .header("Origin", FRONTEND)
            .header("Access-Control-Request-Method", method)
            .header("Access-Control-Request-Headers", headers)
            .send()
    };
    let traced = preflight("GET", "authorization, traceparent, tracestate")
        .await
        .unwrap();
    assert_eq!(
        traced.status().as_u16(),
        200,
        "W3C trace context is allowed"
    );
    let refused = preflight("PUT", "authorization").await.unwrap();
    let body = assert_error(refused, 403, "cors_method_not_allowed").await;
    assert!(body["error"].as_str().unwrap().contains("PATCH"), "{body}");
    let refused = preflight("GET", "x-custom").await.unwrap();
    let body = assert_error(refused, 403, "cors_header_not_allowed").await;
    assert!(
        body["error"].as_str().unwrap().contains("traceparent"),
        "{body}"
    );

    let allowed = app
        .fetch_with_headers("/health/live", &[("Origin", FRONTEND)])
        .await;
    assert_eq!(allowed.status().as_u16(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], FRONTEND);
}

async fn every_route_moves_under_the_base_path_and_so_does_the_cookie(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.http.base_path = "/api/".into()).await;
    // By the full address, for `app.url` would add the base path.
    let fetch_at = |path: &str| app.client.get(format!("{}{path}", app.address)).send();
    let response = fetch_at("/api/health/live").await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_error(fetch_at("/health/live").await.unwrap(), 404, "not_found").await;

    let response = app.signup("base@example.com", PASSWORD).await;
    assert_eq!(response.status().as_u16(), 201);
    let cookie = refresh_cookie_line(response.headers()).unwrap();
    assert!(cookie.contains("Path=/api/auth"), "{cookie}");
}

async fn internal_details_never_reach_the_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    // Break the schema under the running app: the store now fails on every query.
    app.execute("ALTER TABLE users RENAME TO users_gone").await;
    let response = app.me(&account.access_token).await;
    let body = assert_error(response, 500, "internal").await;
    let text = body.to_string();
    assert!(!text.contains("users"), "{text}");
    assert!(!text.contains("relation"), "{text}");
}

/// HEAD is answered wherever GET is (a health checker's probe, say): the same status and
/// headers, no body; a route without GET still says which methods it has.
async fn head_is_answered_wherever_get_is(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/health/live", "/.well-known/jwks.json", "/openapi.json"] {
        let get = app.fetch(path).await;
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status().as_u16(), 200, "{path}");
        assert_eq!(
            head.headers()["content-type"],
            get.headers()["content-type"],
            "{path}"
        );
        assert!(head.headers().contains_key("x-request-id"), "{path}");
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
    let head = app
        .client
        .head(app.url("/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 405);
    assert_eq!(head.headers()["allow"], "POST");
}

crate::backend_tests!(
    head_is_answered_wherever_get_is,
    unknown_routes_and_wrong_methods_get_the_error_shape,
    a_body_that_is_not_json_is_415,
    a_body_over_the_limit_is_413,
    malformed_json_is_400_with_details,
    a_plain_request_id_is_kept_and_anything_else_replaced,
    cors_admits_the_configured_origin_with_credentials_only,
    every_route_moves_under_the_base_path_and_so_does_the_cookie,
    internal_details_never_reach_the_client,
);
