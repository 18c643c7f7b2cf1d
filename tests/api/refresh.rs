use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assert_refresh_token_in_body, refresh_cookie, spawn_app, spawn_app_with, Backend,
};

async fn refresh_rotates_the_cookie_and_issues_a_working_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let response = app.refresh_with_cookie(&account.refresh_token).await;
    assert_eq!(response.status().as_u16(), 200);
    let rotated = refresh_cookie(response.headers()).expect("a new cookie");
    assert_ne!(rotated, account.refresh_token);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    assert!(body.get("refreshToken").is_none());
    let access = body["accessToken"].as_str().unwrap();
    assert_ne!(access, account.access_token);
    assert_eq!(app.me(access).await.status().as_u16(), 200);

    // The child rotates in turn.
    let again = app.refresh_with_cookie(&rotated).await;
    assert_eq!(again.status().as_u16(), 200);
    let child = refresh_cookie(again.headers()).unwrap();
    assert_ne!(child, rotated);

    // A script on the page (a browser's request carries Origin) asking for the body transport
    // gets the cookie only: the HttpOnly token is never traded for one it can read.
    let asked = app
        .client
        .post(app.url("/auth/refresh"))
        .header("Cookie", format!("refresh_token={child}"))
        .header("Origin", "http://localhost:3000")
        .json(&json!({ "tokenTransport": "body" }))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status().as_u16(), 200);
    let grandchild = refresh_cookie(asked.headers()).expect("rotated in the cookie");
    let body: Value = asked.json().await.unwrap();
    assert!(body.get("refreshToken").is_none(), "{body}");

    // A client that is not a browser gets what it asks for, as the contract says.
    let cookie = format!("refresh_token={grandchild}");
    let body = json!({ "tokenTransport": "body" });
    let asked = app
        .post_with_cookie("/auth/refresh", &cookie, Some(&body))
        .await;
    assert_eq!(asked.status().as_u16(), 200);
    let body: Value = asked.json().await.unwrap();
    assert!(body["refreshToken"].is_string(), "{body}");
}

async fn refresh_takes_the_token_from_the_body_for_clients_without_cookies(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let response = app
        .post_json(
            "/auth/refresh",
            &json!({ "refreshToken": account.refresh_token, "tokenTransport": "body" }),
        )
        .await;
    assert_refresh_token_in_body(response, 200).await;
}

async fn only_hashes_of_refresh_tokens_are_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let rows = app
        .query_blobs("SELECT token_hash FROM refresh_tokens")
        .await;
    assert_eq!(rows.len(), 1);
    let stored = &rows[0];
    use sha2::Digest;
    let expected = sha2::Sha256::digest(account.refresh_token.as_bytes());
    assert_eq!(stored.as_slice(), expected.as_slice());
}

async fn reuse_of_a_rotated_token_revokes_the_whole_session(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.tokens.refresh_reuse_grace_seconds = 0).await;
    let account = app.account().await;
    let first = app.refresh_with_cookie(&account.refresh_token).await;
    let child = refresh_cookie(first.headers()).unwrap();
    let body: Value = first.json().await.unwrap();
    let child_access = body["accessToken"].as_str().unwrap().to_string();

    // The retired parent comes back: somebody else holds a copy.
    let reuse = app.refresh_with_cookie(&account.refresh_token).await;
    let cleared = reuse
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        cleared.unwrap_or_default().contains("Max-Age=0"),
        "the dead cookie is cleared"
    );
    assert_error(reuse, 401, "refresh_token_reused").await;

    // The legitimate child dies with its session, and so do the session's access tokens.
    app.assert_refresh_refused(&child).await;
    app.assert_access_refused(&child_access).await;
    app.assert_access_refused(&account.access_token).await;

    let revoked = app.query_texts("SELECT revoked_reason FROM sessions").await;
    assert_eq!(revoked, [Some("refresh_token_reused".to_string())]);
}

async fn reuse_inside_the_grace_window_gets_the_same_child_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let first = app.refresh_with_cookie(&account.refresh_token).await;
    assert_eq!(first.status().as_u16(), 200);
    let child = refresh_cookie(first.headers()).unwrap();

    // A second tab raced with the same cookie.
    let second = app.refresh_with_cookie(&account.refresh_token).await;
    assert_eq!(second.status().as_u16(), 200);
    assert_eq!(refresh_cookie(second.headers()).unwrap(), child);
    let body: Value = second.json().await.unwrap();
    assert_eq!(
        app.me(body["accessToken"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
        200
    );

    // The session is intact and the child is current.
    let third = app.refresh_with_cookie(&child).await;
    assert_eq!(third.status().as_u16(), 200);
}

async fn a_token_two_rotations_old_is_reuse_even_inside_the_grace_window(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let child = refresh_cookie(
        app.refresh_with_cookie(&account.refresh_token)
            .await
            .headers(),
    )
    .unwrap();
    assert!(refresh_cookie(app.refresh_with_cookie(&child).await.headers()).is_some());
    app.assert_refresh_refused_as(&account.refresh_token, "refresh_token_reused")
        .await;
}

async fn twenty_concurrent_refreshes_of_one_token_yield_one_child_and_no_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let requests = (0..20).map(|_| app.refresh_with_cookie(&account.refresh_token));
    let responses = futures_util::future::join_all(requests).await;
    let mut children = Vec::new();
    for response in responses {
        assert_eq!(
            response.status().as_u16(),
            200,
            "every racing tab is served"
        );
        children.push(refresh_cookie(response.headers()).unwrap());
    }
    children.dedup();
    assert_eq!(children.len(), 1, "exactly one child token");

    let sessions = app
        .query_integers(
            "SELECT CAST(generation AS BIGINT), CAST(CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END AS BIGINT)
             FROM sessions",
        )
        .await;
    assert_eq!(sessions.len(), 1, "no orphaned sessions");
    assert_eq!(sessions[0][0], 1, "one rotation happened");
    assert_eq!(sessions[0][1], 1, "the session is live");
    let tokens = app
        .query_integers("SELECT CAST(count(*) AS BIGINT) FROM refresh_tokens")
        .await;
    assert_eq!(tokens[0][0], 2, "the parent and its one child");
}

async fn missing_malformed_and_unknown_refresh_tokens_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.anonymous(reqwest::Method::POST, "/auth/refresh").await;
    assert_error(response, 401, "unauthorized").await;
    app.assert_refresh_refused("garbage").await;
    let unknown = "A".repeat(43);
    app.assert_refresh_refused(&unknown).await;
}

async fn an_expired_refresh_token_is_401_token_expired(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.tokens.access_ttl_seconds = 1;
        s.tokens.refresh_ttl_seconds = 1;
    })
    .await;
    let account = app.account().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    app.assert_refresh_refused_as(&account.refresh_token, "token_expired")
        .await;
}

async fn refresh_of_a_deleted_user_fails(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    app.execute(&format!(
        "UPDATE users SET deleted_at = CURRENT_TIMESTAMP WHERE id = '{}'",
        account.user_id
    ))
    .await;
    app.assert_refresh_refused(&account.refresh_token).await;
    // The token's account is gone, so the profile is too.
    app.assert_access_refused(&account.access_token).await;
}

crate::backend_tests!(
    refresh_rotates_the_cookie_and_issues_a_working_access_token,
    refresh_takes_the_token_from_the_body_for_clients_without_cookies,
    only_hashes_of_refresh_tokens_are_stored,
    reuse_of_a_rotated_token_revokes_the_whole_session,
    reuse_inside_the_grace_window_gets_the_same_child_token,
    a_token_two_rotations_old_is_reuse_even_inside_the_grace_window,
    twenty_concurrent_refreshes_of_one_token_yield_one_child_and_no_errors,
    missing_malformed_and_unknown_refresh_tokens_are_401,
    an_expired_refresh_token_is_401_token_expired,
    refresh_of_a_deleted_user_fails,
);
