//! The audit log: what happened, to whom, from where, under which request id.

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, strings_of, Account, Backend, TestApp, PASSWORD,
};

async fn a_users_own_events_tell_the_story_of_their_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    assert_eq!(
        app.login(&account.email, "wrong password!")
            .await
            .status()
            .as_u16(),
        401
    );
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("X-Request-Id", "trace-login-1")
        .header("User-Agent", "audit-test/1.0")
        .json(&json!({ "email": account.email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let body: Value = app.get_json("/me/events", &account.access_token).await;
    let events = body["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["login_succeeded", "login_failed", "signup"],
        "newest first"
    );
    let login = &events[0];
    assert_eq!(login["requestId"], "trace-login-1");
    assert_eq!(login["userAgent"], "audit-test/1.0");
    assert_eq!(login["ip"], "127.0.0.1");
    assert_eq!(events[1]["details"]["reason"], "wrong_password");
    assert!(body["nextCursor"].is_null());

    // Paging walks the same list.
    let first: Value = app
        .get_json("/me/events?limit=2", &account.access_token)
        .await;
    let cursor = first["nextCursor"].as_str().unwrap().to_string();
    let rest: Value = app
        .get_json(
            &format!("/me/events?limit=2&cursor={cursor}"),
            &account.access_token,
        )
        .await;
    assert_eq!(rest["events"][0]["kind"], "signup");
    assert!(rest["nextCursor"].is_null());
}

/// `GET /admin/events?{query}` as `admin`.
async fn admin_events(app: &TestApp, admin: &Account, query: &str) -> Value {
    app.get_json(&format!("/admin/events?{query}"), &admin.access_token)
        .await
}

async fn reuse_logout_and_admin_actions_are_recorded_and_admins_see_everyone(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.tokens.refresh_reuse_grace_seconds = 0).await;
    let admin = app.admin().await;
    let user = app.account().await;
    app.refresh_with_cookie(&user.refresh_token).await;
    app.assert_refresh_refused_as(&user.refresh_token, "refresh_token_reused")
        .await;
    app.lock_user(&admin.access_token, user.user_id).await;

    let body = admin_events(&app, &admin, &format!("userId={}", user.user_id)).await;
    let kinds = strings_of(&body["events"], "kind");
    assert_eq!(
        kinds,
        ["admin_user_updated", "refresh_reuse_detected", "signup"]
    );
    let update = &body["events"][0];
    assert_eq!(update["actorId"], admin.user_id.to_string());
    assert_eq!(update["details"]["locked"], true);
    assert!(update["details"].get("adminId").is_none(), "{update}");

    // What this admin did, and only that: the lock, the sessions of another user ended, an
    // invitation (about no account); not another admin's action, not their own sign-in.
    let other = app.account().await;
    let revoke = format!("/admin/users/{}/revoke-sessions", other.user_id);
    let response = app
        .client
        .post(app.url(&revoke))
        .bearer_auth(&admin.access_token)
        .header("User-Agent", "AdminWorkstation/9.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let invitation = json!({ "email": "invited@example.com", "role": "user" });
    let response = app
        .authed(
            reqwest::Method::POST,
            "/admin/invitations",
            &admin.access_token,
            Some(invitation),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let second_admin = app.admin().await;
    let response = app.post_bearer(&revoke, &second_admin.access_token).await;
    assert_eq!(response.status().as_u16(), 200);
    let done = admin_events(&app, &admin, &format!("actorId={}", admin.user_id)).await;
    let kinds = strings_of(&done["events"], "kind");
    assert_eq!(
        kinds,
        [
            "invitation_sent",
            "admin_sessions_revoked",
            "admin_user_updated"
        ]
    );
    let about: Vec<&Value> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["userId"])
        .collect();
    let (other_id, user_id) = (json!(other.user_id), json!(user.user_id));
    assert_eq!(about, [&Value::Null, &other_id, &user_id]);
    // Both filters at once: this admin's actions about this user.
    let query = format!("actorId={}&userId={}", admin.user_id, other.user_id);
    let both = admin_events(&app, &admin, &query).await;
    assert_eq!(
        strings_of(&both["events"], "kind"),
        ["admin_sessions_revoked"]
    );
    let bad = app
        .get("/admin/events?actorId=not-a-uuid", &admin.access_token)
        .await;
    assert_error(bad, 400, "validation_failed").await;

    // The user sees that an admin ended their sessions, not which admin.
    let (own_token, _) = app.login_tokens(&other.email).await;
    let own: Value = app.get_json("/me/events", &own_token).await;
    let revoked = own["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "admin_sessions_revoked")
        .expect("the user's log shows the admin's action");
    assert!(revoked.get("actorId").is_none(), "{revoked}");
    assert!(
        revoked["ip"].is_null() && revoked["userAgent"].is_null(),
        "{revoked}"
    );

    let everyone: Value = app.get_json("/admin/events", &admin.access_token).await;
    assert!(everyone["events"].as_array().unwrap().len() >= 4);
    let response = app.get("/admin/events", &user.access_token).await;
    assert_eq!(
        response.status().as_u16(),
        401,
        "the locked user's token died with the lock"
    );
}

crate::backend_tests!(
    a_users_own_events_tell_the_story_of_their_account,
    reuse_logout_and_admin_actions_are_recorded_and_admins_see_everyone,
);
