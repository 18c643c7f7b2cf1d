use serde_json::Value;

use crate::helpers::{assert_error, refresh_cookie_line, spawn_app, Backend};

async fn logout_denies_the_access_token_at_once_and_kills_the_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    assert_eq!(app.me(&account.access_token).await.status().as_u16(), 200);

    let response = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&account.access_token)
        .header("Cookie", format!("refresh_token={}", account.refresh_token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cleared = refresh_cookie_line(response.headers()).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(cleared.contains("Path=/auth"), "{cleared}");

    app.assert_access_refused(&account.access_token).await;
    app.assert_refresh_refused(&account.refresh_token).await;
}

async fn logout_is_idempotent_and_needs_no_valid_credentials(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    for _ in 0..2 {
        let response = app.logout_with_cookie(&account.refresh_token).await;
        assert_eq!(response.status().as_u16(), 200);
    }
    // Nothing at all, or a stale bearer: still 200.
    let response = app.post_bearer("/auth/logout", "not.a.jwt").await;
    assert_eq!(response.status().as_u16(), 200);
    // Logging out by refresh token alone also ends the access tokens of that session.
    app.assert_access_refused(&account.access_token).await;
}

async fn logout_all_ends_every_session_of_the_user_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let (second_access, second_refresh) = app.login_tokens(&account.email).await;
    let other = app.account().await;

    let response = app
        .post_bearer("/auth/logout-all", &account.access_token)
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["revokedSessions"], 2);

    for access in [&account.access_token, &second_access] {
        app.assert_access_refused(access).await;
    }
    for refresh in [&account.refresh_token, &second_refresh] {
        app.assert_refresh_refused(refresh).await;
    }
    assert_eq!(app.me(&other.access_token).await.status().as_u16(), 200);
    app.assert_refresh_works(&other.refresh_token).await;

    let response = app
        .anonymous(reqwest::Method::POST, "/auth/logout-all")
        .await;
    assert_error(response, 401, "unauthorized").await;
}

crate::backend_tests!(
    logout_denies_the_access_token_at_once_and_kills_the_refresh_token,
    logout_is_idempotent_and_needs_no_valid_credentials,
    logout_all_ends_every_session_of_the_user_only,
);
