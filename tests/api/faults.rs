//! What authd promises when Redis goes away (PostgreSQL + Redis backend): each use of the cache
//! has a declared policy. Rate limits and login throttling fail open (logged), so an outage does
//! not lock everybody out. Revocation does not live in the cache at all: every access token is
//! checked against its session in the store, so an outage (or an eviction) neither lets a revoked
//! token in nor keeps a valid one out. These tests run a Redis of their own on a spare loopback
//! port, so stopping it disturbs nothing else.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
