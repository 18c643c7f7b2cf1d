//! Bad input at scale: oversized and many headers, slow (slowloris) heads and bodies, invalid
//! UTF-8 in bodies, headers, paths and queries, deep JSON, huge numbers, duplicate keys and long
//! strings. Each is answered with a 4xx (in the error shape wherever a request reaches authd) or a
//! closed connection within the configured bound: never a 500, a crash or a hang.
//!
//! Raw TCP where reqwest cannot do it (bytes in the request line, trickling, connection state).
//! Every wait is bounded by a tokio timeout, and everything stays on loopback.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend, TestApp};

/// A bound for anything a test waits on that should come back at once.
const PROMPT: Duration = Duration::from_secs(10);

/// A request head left open at a header value, for a slow client to trickle into.
const SLOW_HEAD: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";

/// Short client timeouts for the slow-client tests.
fn quick_timeouts(s: &mut authd::config::Settings) {
    s.server.keep_alive_seconds = 1;
    s.server.client_request_timeout_ms = 500;
    s.server.client_body_timeout_ms = 500;
    s.server.client_disconnect_timeout_ms = 200;
}

/// An answer read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    /// Checks the contract's error shape, as `helpers::assert_error` does for reqwest.
    fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.head);
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("a JSON error body ({e}): {:?}", self.body));
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["statusCode"], status, "{body}");
        assert_eq!(
            Some(body["requestId"].as_str().unwrap()),
            self.header("x-request-id"),
            "{body}"
        );
        body
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    timeout(PROMPT, TcpStream::connect(address))
        .await
        .expect("connects in time")
        .expect("connects")
}

/// Reads one answer: the head, then `Content-Length` bytes of body. `None` when the connection
/// closes (or fails) before a whole head arrives.
async fn read_response<R: AsyncReadExt + Unpin>(reader: &mut R) -> Option<RawResponse> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut response = RawResponse {
        status,
        head,
        body: buffer[head_end..].to_vec(),
    };
    let length: usize = response
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while response.body.len() < length {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => response.body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(response)
}

/// Sends `request` and reads the answer, concurrently: the server may answer and close before
/// it has read everything (a head too large).
async fn exchange(app: &TestApp, request: &[u8]) -> Option<RawResponse> {
    let (mut reader, mut writer) = connect(app).await.into_split();
    let request = request.to_vec();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        // Keep the writing half open until the answer is read.
        tokio::time::sleep(PROMPT).await;
    });
    let response = timeout(PROMPT, read_response(&mut reader))
        .await
        .expect("an answer or a close, not a hang");
    writing.abort();
    response
}

/// True when the server closes the connection within `within`.
async fn closes_within<R: AsyncReadExt + Unpin>(reader: &mut R, within: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    timeout(within, async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sends `head`, then `trickle` one byte every `every` while reading concurrently (so an answer
/// is never lost to the reset a write after the close provokes). Returns the answer, if any, how
/// long after the first byte it came, and whether the connection was closed within `PROMPT`.
async fn trickle(
    stream: TcpStream,
    head: &[u8],
    trickle: &[u8],
    every: Duration,
) -> (Option<RawResponse>, Duration, bool) {
    let (mut reader, mut writer) = stream.into_split();
    let head = head.to_vec();
    let trickle = trickle.to_vec();
    let writing = tokio::spawn(async move {
        if writer.write_all(&head).await.is_err() {
            return;
        }
        for byte in trickle {
            tokio::time::sleep(every).await;
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
        }
        // Never finishes the request: keep the connection open as a slow client would.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let started = Instant::now();
    let outcome = timeout(PROMPT, async {
        let response = read_response(&mut reader).await;
        let answered = started.elapsed();
        let closed = closes_within(&mut reader, PROMPT).await;
        (response, answered, closed)
    })
    .await;
    writing.abort();
    match outcome {
        Ok(result) => result,
        Err(_) => (None, PROMPT, false),
    }
}

// ---------------------------------------------------------------------------------------------
// Headers

async fn oversized_headers_get_431_in_the_error_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let limit = app.settings.http.max_header_bytes;
    // One 64 KiB header: under actix's own 128 KiB head buffer, so authd's limit answers.
    let response = app
        .fetch_with_headers("/health/live", &[("X-Padding", "a".repeat(64 * 1024))])
        .await;
    let body = assert_error(response, 431, "headers_too_large").await;
    assert!(
        body["error"].as_str().unwrap().contains(&limit.to_string()),
        "{body}"
    );
    // A browser can read it (the frontend's cookies outgrew the limit, say): CORS headers too.
    let frontend = app.settings.app.frontend_url.clone();
    let frontend = frontend.trim_end_matches('/');
    let response = app
        .fetch_with_headers(
            "/health/live",
            &[
                ("Origin", frontend.to_string()),
                ("X-Padding", "a".repeat(64 * 1024)),
            ],
        )
        .await;
    assert_eq!(response.status().as_u16(), 431);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        frontend,
        "{:?}",
        response.headers()
    );
    // The limit counts every header: forty 1 KiB cookies are as much as one big one.
    let cookies: Vec<String> = (0..40)
        .map(|i| format!("c{i}={}", "b".repeat(1024)))
        .collect();
    let response = app
        .post_with_cookie("/auth/refresh", &cookies.join("; "), None)
        .await;
    assert_error(response, 431, "headers_too_large").await;
    // A long URI counts too.
    let response = app
        .client
        .get(app.url(&format!("/health/live?pad={}", "q".repeat(20 * 1024))))
        .send()
        .await
        .unwrap();
    assert_error(response, 431, "headers_too_large").await;
    // Under the limit, a large header is fine.
    let response = app
        .fetch_with_headers("/health/live", &[("X-Padding", "a".repeat(limit / 2))])
        .await;
    assert_eq!(response.status().as_u16(), 200);
}

async fn heads_past_the_frameworks_bounds_get_431_and_a_close(backend: Backend) {
    let app = spawn_app(backend).await;
    // More than actix's 96 headers: refused by actix before authd sees the request, so the 431
    // has an empty body; the connection is closed either way.
    let mut request = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..200 {
        request.extend_from_slice(format!("X-Header-{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let response = exchange(&app, &request).await.expect("an answer");
    assert_eq!(response.status, 431, "{}", response.head);
    assert_eq!(response.header("connection"), Some("close"));

    // A head larger than actix's 128 KiB buffer: the same.
    let mut request = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Padding: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 200 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    let response = exchange(&app, &request).await.expect("an answer");
    assert_eq!(response.status, 431, "{}", response.head);

    // The service is unharmed.
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Slow clients

async fn a_slow_first_request_head_gets_408_within_the_client_timeout(backend: Backend) {
    let app = spawn_app_with(backend, quick_timeouts).await;
    let stream = connect(&app).await;
    let (response, answered, closed) =
        trickle(stream, SLOW_HEAD, &[b'a'; 100], Duration::from_millis(100)).await;
    let response = response.expect("an answer");
    // actix's own 408 (the head never reached authd): no body, and the connection is closed.
    assert_eq!(response.status, 408, "{}", response.head);
    assert!(answered < Duration::from_secs(3), "{answered:?}");
    assert!(closed, "the connection is closed after the 408");
}

async fn a_slow_later_request_head_on_a_kept_alive_connection_is_cut_off(backend: Backend) {
    let app = spawn_app_with(backend, quick_timeouts).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let first = timeout(PROMPT, read_response(&mut stream))
        .await
        .unwrap()
        .expect("the first answer");
    assert_eq!(first.status, 200);
    // actix only times the first head of a connection; a later one trickling in one byte per
    // 100 ms (always inside keep-alive) is cut off by authd's connection watchdog after
    // keep_alive (1 s) + client_request_timeout (0.5 s).
    let (response, answered, closed) =
        trickle(stream, SLOW_HEAD, &[b'a'; 200], Duration::from_millis(100)).await;
    assert!(response.is_none(), "no answer, just a close: {response:?}");
    assert!(closed, "the connection is closed");
    assert!(
        answered >= Duration::from_millis(1400) && answered < Duration::from_secs(4),
        "closed after {answered:?}"
    );
    // Meanwhile other clients are served.
    assert_still_serving(&app).await;
}

async fn a_trickling_body_gets_408_within_the_body_timeout(backend: Backend) {
    let app = spawn_app_with(backend, quick_timeouts).await;
    let head =
        b"POST /auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{";
    let stream = connect(&app).await;
    let (response, answered, closed) =
        trickle(stream, head, &[b' '; 200], Duration::from_millis(50)).await;
    let response = response.expect("an answer");
    response.assert_error(408, "request_timeout");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(
        answered >= Duration::from_millis(400) && answered < Duration::from_secs(3),
        "{answered:?}"
    );
    assert!(closed, "the connection is closed after the 408");
}

/// A route that reads no body answers at once and closes the connection: a trickling body
/// cannot hold it.
async fn a_trickling_body_nobody_reads_does_not_hold_the_connection(backend: Backend) {
    let app = spawn_app_with(backend, quick_timeouts).await;
    let head = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n";
    let stream = connect(&app).await;
    let (response, answered, closed) =
        trickle(stream, head, &[b' '; 200], Duration::from_millis(50)).await;
    let response = response.expect("an answer");
    assert_eq!(response.status, 200);
    assert!(answered < Duration::from_secs(1), "{answered:?}");
    assert!(closed, "the unread body ends the connection");
}

// ---------------------------------------------------------------------------------------------
// Invalid UTF-8

async fn invalid_utf8_in_json_bodies_is_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let bodies: [&[u8]; 4] = [
        b"{\"email\": \"a\xff@example.com\", \"password\": \"x\"}",
        b"{\"email\": \"\xc0\xaf@example.com\", \"password\": \"x\"}",
        // A lone surrogate, escaped.
        br#"{"email": "a\ud800@example.com", "password": "x"}"#,
        b"\xef\xbb\xbf{\"email\": \"a@example.com\", \"password\": \"x\"}",
    ];
    for body in bodies {
        let response = app.post_raw_json("/auth/login", body.to_vec()).await;
        assert_error(response, 400, "validation_failed").await;
    }
}

async fn invalid_utf8_in_header_values_is_ignored_or_refused(backend: Backend) {
    // Headers from the loopback peer are believed, so X-Forwarded-For is actually read.
    let app = spawn_app_with(backend, |s| {
        s.http.trusted_proxies = vec!["127.0.0.1/32".into()]
    })
    .await;
    let junk = |prefix: &str| {
        let mut bytes = prefix.as_bytes().to_vec();
        bytes.extend_from_slice(b"\xff\xfe\x80");
        reqwest::header::HeaderValue::from_bytes(&bytes).unwrap()
    };
    // A bearer token that is not text: no token at all.
    let response = app
        .fetch_with_headers("/me", &[("Authorization", junk("Bearer "))])
        .await;
    assert_error(response, 401, "unauthorized").await;
    // A refresh cookie that is not text: no cookie.
    let response = app
        .client
        .post(app.url("/auth/refresh"))
        .header("Cookie", junk("refresh_token="))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "unauthorized").await;
    // A refresh cookie among cookies of other apps on the site whose bytes are not UTF-8 (or
    // that have no `=`): still found.
    let account = app.account().await;
    let mut cookies = b"theme=dark; legacy=caf\xe9; nameless; refresh_token=".to_vec();
    cookies.extend_from_slice(account.refresh_token.as_bytes());
    cookies.extend_from_slice(b"; other=\xff");
    let response = app
        .client
        .post(app.url("/auth/refresh"))
        .header(
            "Cookie",
            reqwest::header::HeaderValue::from_bytes(&cookies).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(crate::helpers::refresh_cookie(response.headers()).is_some());
    // A request id that is not text is replaced; a forwarding header or user agent that is not
    // text is ignored.
    let response = app
        .client
        .get(app.url("/me"))
        .bearer_auth(&account.access_token)
        .header("X-Request-Id", junk("id-"))
        .header("X-Forwarded-For", junk("203.0.113.9, "))
        .header("Forwarded", junk("for="))
        .header("User-Agent", junk("agent/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("X-Forwarded-For", junk(""))
        .header("User-Agent", junk(""))
        .json(&json!({ "email": account.email, "password": crate::helpers::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

async fn invalid_utf8_in_paths_and_queries_is_4xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let token = admin.access_token.as_str();
    // Raw bytes in the request line: refused by actix's HTTP parser before authd sees them
    // (400 with an empty body, connection closed).
    for target in [
        &b"/me/\xff\xfe"[..],
        b"/auth/sessions/\xc0\xaf",
        b"/admin/users?q=\xff",
    ] {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n")
                .as_bytes(),
        );
        let response = exchange(&app, &request).await.expect("an answer");
        assert_eq!(
            response.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(target),
            response.head
        );
        assert_eq!(response.header("connection"), Some("close"));
    }
    // Percent-encoded invalid UTF-8 reaches authd: in a path it names nothing (404) or, where
    // an id stands, is an id that is not a UUID (400); in a query it is an invalid parameter
    // (400) or a search for the replacement character.
    use reqwest::Method;
    for (method, path, status, code) in [
        (Method::GET, "/me%FF", 404, "not_found"),
        (
            Method::DELETE,
            "/auth/sessions/%FF%FE",
            400,
            "validation_failed",
        ),
        (Method::GET, "/admin/users/%C0%AF", 400, "validation_failed"),
        (
            Method::POST,
            "/admin/users/%FF/revoke-sessions",
            400,
            "validation_failed",
        ),
        (
            Method::GET,
            "/admin/users?limit=%FF",
            400,
            "validation_failed",
        ),
        (
            Method::GET,
            "/admin/users?cursor=%FF%FE",
            400,
            "validation_failed",
        ),
        (
            Method::GET,
            "/me/events?userId=%FF",
            400,
            "validation_failed",
        ),
        (
            Method::GET,
            "/admin/events?userId=%C0%AF",
            400,
            "validation_failed",
        ),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_error(response, status, code).await;
    }
    let response = app.get("/admin/users?q=%FF%FE", token).await;
    assert_eq!(response.status().as_u16(), 200);
}

// ---------------------------------------------------------------------------------------------
// JSON shapes

async fn deeply_nested_json_is_400(backend: Backend) {
    let app = spawn_app(backend).await;
    // 100,000 `[`: not an object at all.
    let response = app.post_raw_json("/auth/login", vec![b'['; 100_000]).await;
    let body = assert_error(response, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "body");
    // Deep inside a field: serde_json stops at 128 levels.
    let mut deep = br#"{"email": "#.to_vec();
    deep.extend(std::iter::repeat_n(b'[', 45_000));
    deep.extend(std::iter::repeat_n(b']', 45_000));
    deep.push(b'}');
    let response = app.post_raw_json("/auth/signup", deep).await;
    assert_error(response, 400, "validation_failed").await;
    // Unknown fields are skipped without recursion, however deep (within the body limit).
    let mut unknown = br#"{"x": "#.to_vec();
    unknown.extend(std::iter::repeat_n(b'[', 40_000));
    unknown.extend(std::iter::repeat_n(b']', 40_000));
    unknown.extend_from_slice(br#", "email": "nobody@example.com", "password": "whatever"}"#);
    let response = app.post_raw_json("/auth/login", unknown).await;
    assert_error(response, 401, "invalid_credentials").await;

    // A free-form field (invitation metadata) deeper than serde_json's limit.
    let admin = app.admin().await;
    let depth = 5_000;
    let metadata = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let response = app
        .client
        .post(app.url("/admin/invitations"))
        .bearer_auth(&admin.access_token)
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"email": "deep@example.com", "role": "user", "metadata": {metadata}}}"#
        ))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 400, "validation_failed").await;
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{body}"
    );
    // The service is unharmed.
    assert_eq!(app.me(&admin.access_token).await.status().as_u16(), 200);
}

async fn huge_numbers_duplicate_keys_and_odd_values_are_4xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/auth/login",
            br#"{"email": 1e999999, "password": "x"}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "/auth/login",
            format!(
                r#"{{"email": {}, "password": "x"}}"#,
                "9".repeat(50_000)
            )
            .into_bytes(),
            400,
            "validation_failed",
        ),
        (
            "/auth/login",
            format!(
                r#"{{"unknown": {}, "email": "nobody@example.com", "password": "x"}}"#,
                "9".repeat(50_000)
            )
            .into_bytes(),
            401,
            "invalid_credentials",
        ),
        (
            "/auth/login",
            br#"{"email": "a@example.com", "email": "b@example.com", "password": "x"}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "/auth/refresh",
            br#"{"tokenTransport": "body", "tokenTransport": "cookie"}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "/auth/login",
            br#"{"email": "a\u0000@example.com", "password": "x"}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "/auth/login",
            br#"{"email": "a@example.com", "password": "x"} trailing"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "/auth/signup",
            br#"{"email": "c@example.com", "password": "correct horse battery staple", "name": "a\u0007b"}"#
                .to_vec(),
            400,
            "validation_failed",
        ),
        ("/auth/logout", b"null".to_vec(), 400, "validation_failed"),
        ("/auth/logout", b"[null, null]".to_vec(), 400, "validation_failed"),
        ("/auth/logout", b"\"text\"".to_vec(), 400, "validation_failed"),
        ("/auth/logout", b"12".to_vec(), 400, "validation_failed"),
    ];
    for (path, body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).to_string();
        let response = app.post_raw_json(path, body).await;
        assert_eq!(response.status().as_u16(), status, "{path} {shown}");
        assert_error(response, status, code).await;
    }
    // A key given twice is named as the field at fault.
    let twice = br#"{"email": "a@example.com", "email": "b@example.com", "password": "x"}"#;
    let response = app.post_raw_json("/auth/login", twice.to_vec()).await;
    let body = assert_error(response, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "email", "{body}");
    // Page sizes past u32 in a query.
    let response = app
        .client
        .get(app.url("/me/events?limit=99999999999999999999"))
        .bearer_auth(&account.access_token)
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "validation_failed").await;
}

async fn long_strings_within_the_body_limit_are_4xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let long = "x".repeat(90_000);
    let cases = [
        (
            "/auth/login",
            json!({ "email": format!("{long}@example.com"), "password": "x" }),
            400,
            "validation_failed",
        ),
        (
            "/auth/login",
            json!({ "email": "a@example.com", "password": long }),
            400,
            "validation_failed",
        ),
        (
            "/auth/signup",
            json!({ "email": "a@example.com", "password": long }),
            400,
            "validation_failed",
        ),
        (
            "/auth/signup",
            json!({ "email": "a@example.com", "password": "correct horse battery staple", "name": long }),
            400,
            "validation_failed",
        ),
        (
            "/auth/refresh",
            json!({ "refreshToken": long }),
            401,
            "token_invalid",
        ),
        (
            "/auth/tokens/validate",
            json!({ "token": long }),
            400,
            "token_invalid",
        ),
        (
            "/auth/password/forgot",
            json!({ "email": long }),
            400,
            "validation_failed",
        ),
        (
            "/auth/password/reset",
            json!({ "token": long, "newPassword": "correct horse battery staple" }),
            400,
            "token_invalid",
        ),
    ];
    for (path, body, status, code) in cases {
        let response = app.post_json(path, &body).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_error(response, status, code).await;
    }
    // Long header values under the header limit: a bearer token that is no JWT, a request id
    // too long to keep.
    let response = app
        .client
        .get(app.url("/me"))
        .bearer_auth("e".repeat(12_000))
        .header("X-Request-Id", "r".repeat(2_000))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_error(response, 401, "token_invalid").await;
}

/// A query parameter that does not parse, or is one an endpoint refuses as unknown, is named in
/// `details`, as a body field is.
async fn a_bad_query_parameter_is_named_in_the_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    // The caller is checked first: a user who may not use the route is told that, not more.
    let user = app.account().await;
    let refused = app.get("/admin/users?limit=x", &user.access_token).await;
    assert_error(refused, 403, "forbidden").await;
    let body = Some(serde_json::json!({ "email": 42 }));
    let refused = app
        .authed(
            reqwest::Method::POST,
            "/admin/invitations",
            &user.access_token,
            body,
        )
        .await;
    assert_error(refused, 403, "forbidden").await;
    for (path, field) in [
        ("/admin/users?limit=x", "limit"),
        ("/admin/users?limit=-1", "limit"),
        ("/admin/events?userId=nope", "userId"),
        ("/me/events?limit=1.5", "limit"),
        (
            "/me/events?userId=00000000-0000-0000-0000-000000000000",
            "userId",
        ),
    ] {
        let response = app.get(path, &admin.access_token).await;
        let body = assert_error(response, 400, "validation_failed").await;
        assert_eq!(body["details"][0]["field"], field, "{path}: {body}");
        assert!(
            body["details"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
    }
    // Other unknown parameters are ignored, as docs/api.md says (a cache-buster).
    for path in [
        "/me/events?_=123",
        "/admin/users?_=123",
        "/admin/events?_=123",
    ] {
        assert_eq!(
            app.get_status(path, &admin.access_token).await,
            200,
            "{path}"
        );
    }
}

/// A path id that is not a UUID is a 400 naming the parameter (the route is there, the value is
/// wrong), once the caller may use the route: a non-admin still gets 403, an ended session 401.
async fn a_malformed_path_id_is_400_naming_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let user = app.account().await;
    let id = "00000000-0000-0000-0000-000000000000";
    for (method, path, token, field) in [
        (
            reqwest::Method::GET,
            "/admin/users/not-a-uuid".to_string(),
            &admin.access_token,
            "id",
        ),
        (
            reqwest::Method::DELETE,
            "/auth/sessions/42".to_string(),
            &user.access_token,
            "id",
        ),
        (
            reqwest::Method::DELETE,
            "/me/mfa/passkeys/x".to_string(),
            &user.access_token,
            "id",
        ),
        (
            reqwest::Method::POST,
            format!("/admin/webhooks/{id}/deliveries/nope/retry"),
            &admin.access_token,
            "deliveryId",
        ),
    ] {
        let response = app.authed(method.clone(), &path, token, None).await;
        let body = assert_error(response, 400, "validation_failed").await;
        assert_eq!(
            body["details"][0]["field"], field,
            "{method} {path}: {body}"
        );
        assert_eq!(body["details"][0]["message"], "must be a UUID", "{body}");
    }
    let refused = app.get("/admin/users/not-a-uuid", &user.access_token).await;
    assert_error(refused, 403, "forbidden").await;
    let ended = app
        .post_bearer("/auth/logout-all", &user.access_token)
        .await;
    assert_eq!(ended.status().as_u16(), 200);
    let refused = app.delete("/auth/sessions/42", &user.access_token).await;
    assert_error(refused, 401, "token_invalid").await;
}

/// A signed-in caller's body is read only once the caller is known: a token of an ended session
/// gets 401 whatever body it sends, not the body's 400 (the session check waits on the store; the
/// body's error is ready at once, and actix answers the first error of a handler's arguments).
async fn the_caller_is_checked_before_the_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.account().await;
    let ended = app
        .post_bearer("/auth/logout-all", &user.access_token)
        .await;
    assert_eq!(ended.status().as_u16(), 200);
    let bad_body = json!({ "name": 42, "password": 42, "currentPassword": 42, "newPassword": 42,
        "email": 42, "code": 42, "token": 42, "credential": 42 });
    let some_id = "00000000-0000-0000-0000-000000000000";
    for (method, path) in [
        (reqwest::Method::PATCH, "/me".to_string()),
        (reqwest::Method::DELETE, "/me".to_string()),
        (reqwest::Method::POST, "/auth/password/change".to_string()),
        (reqwest::Method::POST, "/me/email".to_string()),
        (reqwest::Method::POST, "/auth/reauthenticate".to_string()),
        (reqwest::Method::POST, "/me/mfa/totp/confirm".to_string()),
        (reqwest::Method::POST, "/me/mfa/passkeys".to_string()),
        (
            reqwest::Method::PATCH,
            format!("/me/mfa/passkeys/{some_id}"),
        ),
        (reqwest::Method::POST, "/me/identities".to_string()),
        (
            reqwest::Method::POST,
            "/me/identities/github/start".to_string(),
        ),
    ] {
        let response = app
            .authed(
                method.clone(),
                &path,
                &user.access_token,
                Some(bad_body.clone()),
            )
            .await;
        let body = assert_error(response, 401, "token_invalid").await;
        assert!(body.get("details").is_none(), "{method} {path}: {body}");
    }
}

/// Query values that do not parse are explained in a frontend's words, not the parser's.
async fn a_bad_query_value_is_explained_plainly(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    for (path, message) in [
        ("/admin/users?limit=-1", "must be a whole number in range"),
        (
            "/admin/users?limit=99999999999",
            "must be a whole number in range",
        ),
        ("/admin/events?userId=nope", "must be a UUID"),
    ] {
        let response = app.get(path, &admin.access_token).await;
        let body = assert_error(response, 400, "validation_failed").await;
        assert_eq!(body["details"][0]["message"], message, "{path}: {body}");
    }
}

/// The service is unharmed: a plain request from another client is answered.
async fn assert_still_serving(app: &TestApp) {
    let response = app.fetch("/health/live").await;
    assert_eq!(response.status().as_u16(), 200);
}

crate::backend_tests!(
    oversized_headers_get_431_in_the_error_shape,
    heads_past_the_frameworks_bounds_get_431_and_a_close,
    a_slow_first_request_head_gets_408_within_the_client_timeout,
    a_slow_later_request_head_on_a_kept_alive_connection_is_cut_off,
    a_trickling_body_gets_408_within_the_body_timeout,
    a_trickling_body_nobody_reads_does_not_hold_the_connection,
    invalid_utf8_in_json_bodies_is_400,
    invalid_utf8_in_header_values_is_ignored_or_refused,
    invalid_utf8_in_paths_and_queries_is_4xx,
    deeply_nested_json_is_400,
    huge_numbers_duplicate_keys_and_odd_values_are_4xx,
    long_strings_within_the_body_limit_are_4xx,
    a_bad_query_parameter_is_named_in_the_error,
    the_caller_is_checked_before_the_body,
    a_malformed_path_id_is_400_naming_it,
    a_bad_query_value_is_explained_plainly,
);
