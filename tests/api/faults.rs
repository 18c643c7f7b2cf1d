//! What authd promises when Redis goes away (PostgreSQL + Redis backend): each use of the cache
//! has a declared policy. Rate limits and login throttling fail open (logged), so an outage does
//! not lock everybody out. Revocation does not live in the cache at all: every access token is
//! checked against its session in the store, so an outage (or an eviction) neither lets a revoked
//! token in nor keeps a valid one out. These tests run a Redis of their own on a spare loopback
//! port, so stopping it disturbs nothing else.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use serde_json::json;

use crate::helpers::{assert_error, spawn_app_with, Backend, PASSWORD};
use crate::smtp::free_port;

struct OwnRedis {
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis { child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[actix_web::test]
async fn with_redis_down_logins_go_on_and_access_tokens_are_still_checked_against_the_store() {
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let app = spawn_app_with(Backend::PostgresRedis, |s| {
        s.cache.url = authd::config::ConnectionUrl::new(format!("redis://127.0.0.1:{port}/0"));
        s.cache.command_timeout_ms = 300;
    })
    .await;
    let account = app.account().await;
    assert_eq!(app.me(&account.access_token).await.status().as_u16(), 200);

    redis.stop();
    // Fail open: limits cannot be counted, the login still works (and so does a refresh).
    let response = app.login(&account.email, PASSWORD).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        !response.headers().contains_key("ratelimit"),
        "no limit was counted"
    );
    app.assert_refresh_works(&account.refresh_token).await;
    // Access tokens keep working, and a logout still takes effect at once: the store decides.
    assert_eq!(app.me(&account.access_token).await.status().as_u16(), 200);
    let (access, _) = app.login_tokens(&account.email).await;
    let logout = app.post_bearer("/auth/logout", &access).await;
    assert_eq!(logout.status().as_u16(), 200);
    app.assert_access_refused(&access).await;
    let ready = app.fetch("/health/ready").await;
    assert_error(ready, 503, "not_ready").await;

    // Redis is back on the same address: the connection heals by itself.
    let _redis = OwnRedis::start(port);
    let started = Instant::now();
    loop {
        let ready = app.fetch("/health/ready").await;
        if ready.status().as_u16() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the cache connection never recovered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let response = app
        .post_json(
            "/auth/login",
            &json!({ "email": account.email, "password": PASSWORD }),
        )
        .await;
    assert!(
        response.headers().contains_key("ratelimit"),
        "limits are counted again"
    );
}

/// A TCP proxy to PostgreSQL that can stop passing bytes on while keeping every connection open:
/// a server, a pooler in between or a network that stops answering without closing anything.
struct StallingProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
}

impl StallingProxy {
    async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    continue;
                };
                let (from_client, to_client) = inbound.into_split();
                let (from_server, to_server) = outbound.into_split();
                tokio::spawn(pass_on(from_client, to_server, flag.clone()));
                tokio::spawn(pass_on(from_server, to_client, flag.clone()));
            }
        });
        StallingProxy { port, stalled }
    }

    fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding what it read while the proxy is stalled.
async fn pass_on(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// PostgreSQL stops answering mid-request, connections open (a stalled pooler or network): the
/// request is answered 503 `unavailable` once `database.statement_timeout_ms` (and a second) has
/// passed, not when the database answers again; afterwards the same pool serves as before. The
/// logins the outage refused do not count against the account as wrong passwords.
#[actix_web::test]
async fn a_database_that_stops_answering_is_a_503_not_a_hang() {
    let proxy = StallingProxy::start(5432).await;
    let port = proxy.port;
    let app = spawn_app_with(Backend::PostgresRedis, move |s| {
        let url = s
            .database
            .url
            .as_str()
            .replacen(":5432/", &format!(":{port}/"), 1);
        s.database.url = authd::config::ConnectionUrl::new(url);
        s.database.statement_timeout_ms = 1_000;
        s.auth.lockout.threshold = 2;
        s.auth.lockout.base_delay_seconds = 60;
    })
    .await;
    let account = app.account().await;
    assert_eq!(app.me(&account.access_token).await.status().as_u16(), 200);

    proxy.stall(true);
    let stalled = app.me(&account.access_token).await;
    // Answered while the proxy still holds everything back.
    assert_error(stalled, 503, "unavailable").await;
    for _ in 0..3 {
        let login = app.login(&account.email, PASSWORD).await;
        assert_error(login, 503, "unavailable").await;
    }
    proxy.stall(false);
    assert_eq!(app.me(&account.access_token).await.status().as_u16(), 200);
    app.assert_login_works(&account.email, PASSWORD).await;
}
