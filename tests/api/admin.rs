//! `/admin/*`: only unlocked admins, as the store says right now.

use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, strings_of, Backend, PASSWORD};

async fn admin_endpoints_need_an_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.account().await;
    let id = user.user_id;
    let calls = [
        (reqwest::Method::GET, "/admin/users".to_string()),
        (reqwest::Method::GET, format!("/admin/users/{id}")),
        (reqwest::Method::PATCH, format!("/admin/users/{id}")),
        (reqwest::Method::DELETE, format!("/admin/users/{id}")),
        (
            reqwest::Method::POST,
            format!("/admin/users/{id}/revoke-sessions"),
        ),
    ];
    for (method, path) in calls {
        let response = app
            .authed(method.clone(), &path, &user.access_token, None)
            .await;
        assert_error(response, 403, "forbidden").await;
        let response = app.anonymous(method, &path).await;
        assert_error(response, 401, "unauthorized").await;
    }
}

async fn users_are_listed_in_pages_and_searched(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    for i in 0..4 {
        app.assert_signup_works(&format!("page{i}@example.com"))
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/users?limit=2&cursor={c}"),
            None => "/admin/users?limit=2".to_string(),
        };
        let body: Value = app.get_json(&path, &admin.access_token).await;
        let users = body["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_string()),
        );
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "no user twice across pages");

    let body: Value = app
        .get_json("/admin/users?q=PAGE2", &admin.access_token)
        .await;
    let found = strings_of(&body["users"], "email");
    assert_eq!(found, ["page2@example.com"]);
    let body: Value = app
        .get_json("/admin/users?q=%25", &admin.access_token)
        .await;
    assert!(
        body["users"].as_array().unwrap().is_empty(),
        "% is matched literally"
    );

    for bad in [
        "/admin/users?limit=0",
        "/admin/users?limit=1000",
        "/admin/users?cursor=junk",
        "/admin/users?limit=x",
    ] {
        let response = app.get(bad, &admin.access_token).await;
        assert_error(response, 400, "validation_failed").await;
    }
}

async fn an_admin_reads_changes_locks_and_deletes_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let user = app.account().await;
    let path = format!("/admin/users/{}", user.user_id);

    let body: Value = app.get_json(&path, &admin.access_token).await;
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["locked"], false);
    let missing = format!("/admin/users/{}", uuid::Uuid::new_v4());
    app.assert_get_error(&missing, &admin.access_token, 404, "not_found")
        .await;

    // Locking ends the user's sessions and keeps them out.
    app.lock_user(&admin.access_token, user.user_id).await;
    app.assert_access_refused(&user.access_token).await;
    app.assert_login_locked(&user.email).await;
    app.patch(&path, &admin.access_token, json!({ "locked": false }))
        .await;
    app.assert_login_works(&user.email, PASSWORD).await;

    let body: Value = app
        .patch(&path, &admin.access_token, json!({ "role": "admin" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["role"], "admin");
    let response = app
        .patch(&path, &admin.access_token, json!({ "role": "root" }))
        .await;
    assert_error(response, 400, "validation_failed").await;
    for null in [json!({ "role": null }), json!({ "locked": null })] {
        let response = app.patch(&path, &admin.access_token, null).await;
        assert_error(response, 400, "validation_failed").await;
    }

    // An admin cannot demote, lock or delete themselves.
    let own = format!("/admin/users/{}", admin.user_id);
    for (method, body) in [
        (reqwest::Method::PATCH, Some(json!({ "role": "user" }))),
        (reqwest::Method::PATCH, Some(json!({ "locked": true }))),
        (reqwest::Method::DELETE, None),
    ] {
        assert_error(
            app.authed(method, &own, &admin.access_token, body).await,
            400,
            "validation_failed",
        )
        .await;
    }

    let (fresh_access, _) = app.login_tokens(&user.email).await;
    let response = app
        .authed(
            reqwest::Method::POST,
            &format!("{path}/revoke-sessions"),
            &admin.access_token,
            None,
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert!(body["revokedSessions"].as_u64().unwrap() >= 1);
    app.assert_access_refused(&fresh_access).await;

    assert_eq!(
        app.delete(&path, &admin.access_token)
            .await
            .status()
            .as_u16(),
        204
    );
    assert_error(app.get(&path, &admin.access_token).await, 404, "not_found").await;
    app.assert_login_refused(&user.email, PASSWORD).await;
}

async fn a_demoted_admin_loses_admin_rights_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let response = app.get("/admin/users", &admin.access_token).await;
    assert_eq!(response.status().as_u16(), 200);
    app.execute(&format!(
        "UPDATE users SET role = 'user' WHERE id = '{}'",
        admin.user_id
    ))
    .await;
    let response = app.get("/admin/users", &admin.access_token).await;
    assert_error(response, 403, "forbidden").await;
}

/// The last live, unlocked admin stays one: no demotion, lock or deletion (`DELETE /me`
/// included) takes it, and two admins removing each other at once leave one of them.
async fn the_last_admin_stays(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.admin().await;
    let second = app.admin().await;
    let path = format!("/admin/users/{}", second.user_id);
    let demoted = app
        .patch(&path, &first.access_token, json!({ "role": "user" }))
        .await;
    assert_eq!(demoted.status().as_u16(), 200, "one of two may go");
    let response = app.delete_account(&first.access_token, PASSWORD).await;
    assert_error(response, 409, "last_admin").await;
    app.assert_login_works(&first.email, PASSWORD).await;

    let live_admins = "SELECT count(*) FROM users WHERE role = 'admin' AND NOT locked
                       AND deleted_at IS NULL";
    for change in [json!({ "role": "user" }), json!({ "locked": true })] {
        app.execute("UPDATE users SET role = 'user'").await;
        let (a, b) = (app.admin().await, app.admin().await);
        let (a_path, b_path) = (
            format!("/admin/users/{}", a.user_id),
            format!("/admin/users/{}", b.user_id),
        );
        let (one, other) = tokio::join!(
            app.patch(&b_path, &a.access_token, change.clone()),
            app.patch(&a_path, &b.access_token, change.clone()),
        );
        let statuses = [one.status().as_u16(), other.status().as_u16()];
        assert_eq!(
            statuses.iter().filter(|status| **status == 200).count(),
            1,
            "{change}: {statuses:?}"
        );
        assert_eq!(
            app.query_integers(live_admins).await,
            vec![vec![1]],
            "{change}"
        );
    }
}

crate::backend_tests!(
    admin_endpoints_need_an_admin,
    the_last_admin_stays,
    users_are_listed_in_pages_and_searched,
    an_admin_reads_changes_locks_and_deletes_users,
    a_demoted_admin_loses_admin_rights_at_once,
);
