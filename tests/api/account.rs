//! The signed-in user's account: sessions, profile, password change, deletion; and the CLI.

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, authd_cli, claims_of, output_with_stdin, refresh_cookie_line, spawn_app,
    spawn_app_with, Backend, NEW_PASSWORD, PASSWORD,
};
use crate::processes::TempDir;

fn sid_of(access_token: &str) -> String {
    claims_of(access_token)["sid"].as_str().unwrap().to_string()
}

async fn sessions_are_listed_with_the_current_one_marked_and_can_be_ended(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let (second_access, second_refresh) = app.login_tokens(&account.email).await;
    let other = app.account().await;

    let response = app.get("/auth/sessions", &account.access_token).await;
    assert_eq!(response.status().as_u16(), 200);
    let sessions: Vec<Value> = response.json().await.unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], sid_of(&account.access_token).as_str());
    for key in ["createdAt", "lastUsedAt", "userAgent", "ip"] {
        assert!(sessions[0].get(key).is_some(), "{key}");
    }
    assert_eq!(sessions[0]["ip"], "127.0.0.1");

    let second_sid = sid_of(&second_access);
    let response = app
        .delete(
            &format!("/auth/sessions/{second_sid}"),
            &account.access_token,
        )
        .await;
    assert_eq!(response.status().as_u16(), 204);
    app.assert_access_refused(&second_access).await;
    app.assert_refresh_refused(&second_refresh).await;
    assert_eq!(app.me(&account.access_token).await.status().as_u16(), 200);

    // Someone else's session, a second time, or a made-up one: not found.
    let others = sid_of(&other.access_token);
    for sid in [others.clone(), second_sid, uuid::Uuid::new_v4().to_string()] {
        let response = app
            .delete(&format!("/auth/sessions/{sid}"), &account.access_token)
            .await;
        assert_error(response, 404, "not_found").await;
    }
    assert_eq!(app.me(&other.access_token).await.status().as_u16(), 200);
}

async fn the_profile_name_can_be_changed_and_cleared(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let response = app
        .patch("/me", &account.access_token, json!({ "name": "  Ada L. " }))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "Ada L.");
    assert!(body["updatedAt"].as_str().is_some());

    // Refused, and nothing changes: too long; a misspelt field (a partial update refuses what it
    // does not know rather than ignoring it); a text-direction control, which would let a name
    // show an admin screen something else.
    for body in [
        json!({ "name": "x".repeat(201) }),
        json!({ "Name": "x" }),
        json!({ "displayName": "x" }),
        json!({ "name": "\u{202E}evil" }),
    ] {
        let response = app.patch("/me", &account.access_token, body).await;
        assert_error(response, 400, "validation_failed").await;
    }
    // What is absent stays.
    let response = app.patch("/me", &account.access_token, json!({})).await;
    let unchanged: Value = response.json().await.unwrap();
    assert_eq!(unchanged["name"], "Ada L.", "nothing sent, nothing changed");
    let me = app.get_json("/me", &account.access_token).await;
    assert_eq!(me["name"], "Ada L.", "kept, and stored");
    // A name of invisible characters only is no name.
    let response = app
        .patch(
            "/me",
            &account.access_token,
            json!({ "name": "\u{200B}\u{FEFF}" }),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], Value::Null);
    let response = app
        .patch("/me", &account.access_token, json!({ "name": "Ada" }))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let response = app
        .patch("/me", &account.access_token, json!({ "name": null }))
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], Value::Null);
}

async fn changing_the_password_keeps_this_session_and_ends_the_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let (other_access, other_refresh) = app.login_tokens(&account.email).await;
    // A wrong current password, a weak new one or the same again: 400, naming the field at fault.
    for (current, new, field) in [
        ("wrong one!", NEW_PASSWORD, "currentPassword"),
        (PASSWORD, "password1", "newPassword"),
        (PASSWORD, PASSWORD, "newPassword"),
    ] {
        let response = app
            .change_password(&account.access_token, current, new)
            .await;
        let body = assert_error(response, 400, "validation_failed").await;
        assert_eq!(
            body["details"][0]["field"], field,
            "from {current:?} to {new:?}"
        );
    }

    let response = app
        .change_password(&account.access_token, PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["revokedSessions"], 1);

    assert_eq!(app.me(&account.access_token).await.status().as_u16(), 200);
    app.assert_refresh_works(&account.refresh_token).await;
    app.assert_access_refused(&other_access).await;
    app.assert_refresh_refused(&other_refresh).await;
    app.assert_login_refused(&account.email, PASSWORD).await;
    app.assert_login_works(&account.email, NEW_PASSWORD).await;
}

async fn deleting_the_account_needs_the_password_and_ends_everything(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let response = app
        .delete_account(&account.access_token, "not it at all")
        .await;
    let body = assert_error(response, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "password");

    let response = app.delete_account(&account.access_token, PASSWORD).await;
    assert_eq!(response.status().as_u16(), 204);
    assert!(refresh_cookie_line(response.headers())
        .unwrap()
        .contains("Max-Age=0"));
    app.assert_access_refused(&account.access_token).await;
    app.assert_refresh_refused(&account.refresh_token).await;
    app.assert_login_refused(&account.email, PASSWORD).await;
    // By default the address stays spent.
    app.assert_email_taken(&account.email).await;
    let deleted = app
        .query_integers("SELECT CAST(count(*) AS BIGINT) FROM users WHERE deleted_at IS NOT NULL")
        .await;
    assert_eq!(deleted[0][0], 1, "a soft delete keeps the row");
}

async fn a_deleted_accounts_email_can_sign_up_again_when_configured(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.auth.allow_email_reuse_after_delete = true).await;
    let account = app.account().await;
    let response = app.delete_account(&account.access_token, PASSWORD).await;
    assert_eq!(response.status().as_u16(), 204);
    let response = app.signup(&account.email, PASSWORD).await;
    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.unwrap();
    assert_ne!(
        body["user"]["id"],
        account.user_id.to_string(),
        "a new account, not the old one"
    );
}

crate::backend_tests!(
    sessions_are_listed_with_the_current_one_marked_and_can_be_ended,
    the_profile_name_can_be_changed_and_cleared,
    changing_the_password_keeps_this_session_and_ends_the_others,
    deleting_the_account_needs_the_password_and_ends_everything,
    a_deleted_accounts_email_can_sign_up_again_when_configured,
);

#[test]
fn the_cli_creates_the_first_admin_with_a_password_from_stdin() {
    let dir = TempDir::new("user");
    let args = [
        "user",
        "create",
        "--admin",
        "--email",
        "root@example.com",
        "--name",
        "Root",
    ];
    let run =
        |password: &str| output_with_stdin(authd_cli(&dir.0).args(args), &format!("{password}\n"));
    let weak = run("password");
    assert_eq!(weak.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("authd: password"));
    let created = run(NEW_PASSWORD);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).starts_with("created admin root@example.com"));
    let again = run(NEW_PASSWORD);
    assert_eq!(again.status.code(), Some(1), "the email is taken now");
}
