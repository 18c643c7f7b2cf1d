//! The embedded default: SQLite and in-process state, nothing else installed.

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, Backend, PASSWORD};

#[actix_web::test]
async fn data_survives_a_restart_on_the_same_sqlite_file() {
    let mut app = spawn_app(Backend::SqliteInProcess).await;
    let account = app.account().await;
    app.restart().await;

    let (access, _) = app.login_tokens(&account.email).await;
    assert_eq!(app.me(&access).await.status().as_u16(), 200);
    // The session created before the restart still rotates.
    let response = app.refresh_with_cookie(&account.refresh_token).await;
    assert_eq!(response.status().as_u16(), 200);
}

#[actix_web::test]
async fn an_in_memory_sqlite_database_serves_the_whole_flow() {
    let app = spawn_app_with(Backend::SqliteInProcess, |s| {
        s.database.url = authd::config::ConnectionUrl::new("sqlite::memory:");
    })
    .await;
    let response = app.signup("memory@example.com", PASSWORD).await;
    assert_eq!(response.status().as_u16(), 201);
    let response = app.login("memory@example.com", PASSWORD).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    let me = app.me(body["accessToken"].as_str().unwrap()).await;
    assert_eq!(me.status().as_u16(), 200);
}

#[actix_web::test]
async fn readiness_covers_the_embedded_backends_too() {
    let app = spawn_app(Backend::SqliteInProcess).await;
    let response = app.fetch("/health/ready").await;
    assert_eq!(response.status().as_u16(), 200);
}
