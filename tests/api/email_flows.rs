//! The emailed flows end to end, through a real SMTP server: the tests read the links from the
//! delivered mail, as a user would.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, cookie_line, cookie_value, spawn_app_with, Backend, TestApp, NEW_PASSWORD,
    PASSWORD,
};
use crate::smtp::{free_port, spawn_app_mailing, spawn_app_mailing_with, use_sink, SmtpSink};

async fn signup_mails_a_verification_link_that_verifies_once(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let account = app.account().await;
    let mails = sink.wait_for(1).await;
    let mail = &mails[0];
    assert_eq!(mail.to, account.email);
    assert!(
        mail.subject.contains("Confirm your email address"),
        "{}",
        mail.subject
    );
    assert!(
        mail.message_id.starts_with('<') && mail.message_id.ends_with("@localhost>"),
        "{}",
        mail.message_id
    );
    assert!(
        mail.text
            .contains("http://localhost:3000/verify-email?token="),
        "{}",
        mail.text
    );
    assert!(mail.html.contains("/verify-email?token="));
    // Once sent, the outbox keeps no copy of the link: a reader of the database (a backup, a
    // replica) finds no live token there.
    let mut kept = Vec::new();
    for _ in 0..50 {
        kept = app
            .query_texts("SELECT status || ':' || text_body || html_body FROM email_outbox")
            .await;
        if kept == [Some("sent:".to_string())] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kept, [Some("sent:".to_string())]);

    let token = mail.token();
    let response = app.verify_email(&token).await;
    assert_eq!(response.status().as_u16(), 200);
    let me: Value = app.me(&account.access_token).await.json().await.unwrap();
    assert_eq!(me["emailVerified"], true);
    let again = app.verify_email(&token).await;
    assert_error(again, 400, "token_invalid").await;
    let junk = app.verify_email("junk").await;
    assert_error(junk, 400, "token_invalid").await;
}

/// Whoever signs up may not own the address: the name they chose is text of theirs in mail to
/// someone else, so no mail greets it until the address is proven (the verification, a reset or
/// a notice to a squatted address); afterwards mail greets the owner by name.
async fn mail_to_an_unproven_address_carries_no_chosen_name(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let email = format!("squatted-{}@example.com", uuid::Uuid::new_v4().simple());
    let name = "Call 555-0100 to claim your prize";
    let body = json!({ "email": email, "password": PASSWORD, "name": name });
    let signed_up = app.post_json("/auth/signup", &body).await;
    assert_eq!(signed_up.status().as_u16(), 201);
    app.forgot_password(&email).await;
    let again = app.signup(&email, PASSWORD).await;
    assert_eq!(again.status().as_u16(), 409);
    let mails = sink.wait_for(2).await;
    for mail in &mails {
        assert!(
            !mail.text.contains(name) && !mail.html.contains(name),
            "{}",
            mail.text
        );
        assert!(mail.text.starts_with("Hello there,"), "{}", mail.text);
    }

    let verify = sink.nth_mail_to(1, &email, "Confirm your email").await;
    assert_eq!(
        app.verify_email(&verify.token()).await.status().as_u16(),
        200
    );
    app.forgot_password(&email).await;
    let reset = sink.nth_mail_to(2, &email, "Reset").await;
    assert!(
        reset.text.starts_with(&format!("Hello {name},")),
        "{}",
        reset.text
    );
}

async fn forgot_then_reset_signs_every_session_out(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let account = app.account().await;
    let (_, other_refresh) = app.login_tokens(&account.email).await;
    sink.wait_for(1).await;

    let known = app.forgot_password(&account.email.to_uppercase()).await;
    let unknown = app.forgot_password("nobody@example.com").await;
    assert_eq!(known.status().as_u16(), 202);
    assert_eq!(unknown.status().as_u16(), 202);
    assert_eq!(
        known.json::<Value>().await.unwrap(),
        unknown.json::<Value>().await.unwrap()
    );
    let mails = sink.wait_for(2).await;
    let reset = mails
        .iter()
        .find(|m| m.subject.contains("Reset your password"))
        .unwrap();
    assert_eq!(reset.to, account.email);
    assert!(reset.text.contains("/reset-password?token="));

    // A refused password does not burn the link.
    let weak = app.reset_password(&reset.token(), "password1").await;
    let body = assert_error(weak, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "newPassword");
    let response = app.reset_password(&reset.token(), NEW_PASSWORD).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["revokedSessions"], 2);

    app.assert_refresh_refused(&account.refresh_token).await;
    app.assert_refresh_refused(&other_refresh).await;
    app.assert_login_refused(&account.email, PASSWORD).await;
    let login = app.login(&account.email, NEW_PASSWORD).await;
    assert_eq!(login.status().as_u16(), 200);
    let login: Value = login.json().await.unwrap();
    assert_eq!(
        login["user"]["emailVerified"], true,
        "the reset link proved the address"
    );
    let again = app.reset_password(&reset.token(), NEW_PASSWORD).await;
    assert_error(again, 400, "token_invalid").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Verification, reset, and the notice that the password changed; nothing for the unknown address.
    let mails = sink.wait_for(3).await;
    assert_eq!(mails.len(), 3, "{mails:?}");
    let notice = mails
        .iter()
        .find(|m| m.subject.contains("password was changed"))
        .expect("a notice");
    assert_eq!(notice.to, account.email);
    assert!(notice.text.contains("/reset-password"));
}

async fn a_validated_token_becomes_a_one_hour_cookie_for_the_next_step(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let account = app.account().await;
    app.forgot_password(&account.email).await;
    let mails = sink.wait_for(2).await;
    let token = mails
        .iter()
        .find(|m| m.subject.contains("Reset"))
        .unwrap()
        .token();

    let response = app.validate_token(&token).await;
    assert_eq!(response.status().as_u16(), 200);
    let cookie_line =
        cookie_line(response.headers(), "one_time_token").expect("the one_time_token cookie");
    // The cookie carries the follow-up token for the next step.
    let follow_up = cookie_value(response.headers(), "one_time_token").expect("a follow-up");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/auth", "Max-Age=3600"] {
        assert!(
            cookie_line.contains(flag),
            "{flag} missing from {cookie_line}"
        );
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tokenType"], "password_reset");
    assert_eq!(body["metadata"], json!({}));
    // The emailed token is used up.
    assert_error(app.validate_token(&token).await, 400, "token_invalid").await;
    let response = app
        .reset_password_with_cookie(&follow_up, NEW_PASSWORD)
        .await;
    assert_eq!(response.status().as_u16(), 200);
    app.assert_login_works(&account.email, NEW_PASSWORD).await;
}

/// Opening a link does not lengthen its life: the follow-up token expires with the link.
async fn a_follow_up_expires_with_the_link_it_came_from(backend: Backend) {
    let (app, sink) = spawn_app_mailing_with(backend, |s| {
        s.auth.password_reset_ttl_seconds = 2;
    })
    .await;
    let account = app.account().await;
    app.forgot_password(&account.email).await;
    let mails = sink.wait_for(2).await;
    let reset = mails.iter().find(|m| m.subject.contains("Reset")).unwrap();
    let response = app.validate_token(&reset.token()).await;
    assert_eq!(response.status().as_u16(), 200);
    let follow_up = cookie_value(response.headers(), "one_time_token").expect("a follow-up");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let response = app
        .reset_password_with_cookie(&follow_up, NEW_PASSWORD)
        .await;
    assert_error(response, 400, "token_invalid").await;
    app.assert_login_works(&account.email, PASSWORD).await;
}

async fn with_verification_required_signup_hides_taken_emails_and_login_waits_for_the_link(
    backend: Backend,
) {
    let (app, sink) = spawn_app_mailing_with(backend, |s| {
        s.auth.require_email_verification = true;
    })
    .await;
    let signup_body =
        |name: &str| json!({ "email": "vera@example.com", "password": PASSWORD, "name": name });
    let first = app.post_json("/auth/signup", &signup_body("Vera")).await;
    assert_eq!(first.status().as_u16(), 201);
    assert!(
        first.headers().get("set-cookie").is_none(),
        "no tokens before verification"
    );
    let first: Value = first.json().await.unwrap();
    assert!(first.get("accessToken").is_none());
    assert!(first["message"].as_str().unwrap().contains("verify"));

    // The same address again: the same shape of answer; the owner is told by mail instead.
    let second = app.post_json("/auth/signup", &signup_body("Mallory")).await;
    assert_eq!(second.status().as_u16(), 201);
    let second: Value = second.json().await.unwrap();
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v["user"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&first), keys(&second));
    assert_eq!(first["message"], second["message"]);
    let mails = sink.wait_for(2).await;
    assert!(mails
        .iter()
        .any(|m| m.subject.contains("tried to use your address")));
    let users = app
        .query_integers("SELECT CAST(count(*) AS BIGINT) FROM users")
        .await;
    assert_eq!(users[0][0], 1);

    app.assert_login_refused("vera@example.com", "wrong password!")
        .await;
    assert_error(
        app.login("vera@example.com", PASSWORD).await,
        403,
        "email_not_verified",
    )
    .await;
    let verify = mails
        .iter()
        .find(|m| m.subject.contains("Confirm"))
        .unwrap();
    assert_eq!(
        app.verify_email(&verify.token()).await.status().as_u16(),
        200
    );
    app.assert_login_works("vera@example.com", PASSWORD).await;
}

async fn resend_mails_only_unverified_accounts_and_answers_alike(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let account = app.account().await;
    sink.wait_for(1).await;
    let known = app
        .post_json("/auth/email/resend", &json!({ "email": account.email }))
        .await;
    let unknown = app
        .post_json(
            "/auth/email/resend",
            &json!({ "email": "ghost@example.com" }),
        )
        .await;
    assert_eq!(known.status().as_u16(), 202);
    assert_eq!(
        known.json::<Value>().await.unwrap(),
        unknown.json::<Value>().await.unwrap()
    );
    let mails = sink.wait_for(2).await;
    assert!(mails.iter().all(|m| m.to == account.email));
    assert_error(
        app.post_json("/auth/email/resend", &json!({ "email": "nope" }))
            .await,
        400,
        "validation_failed",
    )
    .await;
}

/// Reset and verification requests for one address send at most a few mails per window, each
/// kind counted apart; the answers stay the same.
async fn a_mailbox_gets_at_most_a_few_link_mails_per_window(backend: Backend) {
    let (app, sink) = spawn_app_mailing_with(backend, |s| {
        s.auth.link_mails_per_address = 2;
    })
    .await;
    let account = app.account().await;
    sink.wait_for(1).await;
    for _ in 0..4 {
        let forgot = app.forgot_password(&account.email).await;
        assert_eq!(forgot.status().as_u16(), 202);
        let resend = app
            .post_json("/auth/email/resend", &json!({ "email": account.email }))
            .await;
        assert_eq!(resend.status().as_u16(), 202);
    }
    // The signup's verification mail, then two of each kind.
    sink.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = sink.wait_for(5).await;
    assert_eq!(mails.len(), 5, "{mails:?}");
    let resets = mails.iter().filter(|m| m.subject.contains("Reset")).count();
    assert_eq!(resets, 2);
}

/// Where signup hides which addresses have accounts, each signup with a taken address tells its
/// holder, at most `auth.link_mails_per_address` times per window.
async fn hidden_signups_with_a_taken_address_tell_its_holder_a_few_times(backend: Backend) {
    let (app, sink) = spawn_app_mailing_with(backend, |s| {
        s.auth.require_email_verification = true;
        s.auth.link_mails_per_address = 2;
    })
    .await;
    let first = app.signup("held@example.com", PASSWORD).await;
    assert_eq!(first.status().as_u16(), 201);
    for _ in 0..4 {
        let again = app.signup("held@example.com", PASSWORD).await;
        assert_eq!(again.status().as_u16(), 201);
    }
    // The verification mail, then two notices.
    sink.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = sink.wait_for(3).await;
    assert_eq!(
        mails.len(),
        3,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert!(mails.iter().all(|m| m.to == "held@example.com"));
}

/// Account pre-hijacking through a reset: a second factor set up on a never-verified account
/// goes when the mailbox's owner resets the password.
async fn a_reset_on_a_never_verified_account_removes_the_factors_set_before_it(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let squatter = app.account().await;
    app.enrol_totp(&squatter.access_token).await;
    // The verification mail, the notice that two-step verification is on, the reset.
    app.forgot_password(&squatter.email).await;
    let mails = sink.wait_for(3).await;
    let reset = mails.iter().find(|m| m.subject.contains("Reset")).unwrap();
    let response = app.reset_password(&reset.token(), NEW_PASSWORD).await;
    assert_eq!(response.status().as_u16(), 200);
    let login = app.login(&squatter.email, NEW_PASSWORD).await;
    assert_eq!(login.status().as_u16(), 200);
    let body: Value = login.json().await.unwrap();
    assert!(
        body["accessToken"].is_string(),
        "no second factor asked: {body}"
    );
    app.assert_refresh_refused(&squatter.refresh_token).await;
}

/// Polls the outbox every 100 ms, for ten seconds at most, until `count` rows match
/// `condition`; panics with `never` if they do not.
async fn wait_for_outbox(app: &TestApp, condition: &str, count: i64, never: &str) {
    let sql = format!("SELECT CAST(count(*) AS BIGINT) FROM email_outbox WHERE {condition}");
    for _ in 0..100 {
        if app.query_integers(&sql).await[0][0] == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{never}");
}

async fn mail_waits_in_the_outbox_while_smtp_is_down_and_arrives_exactly_once(backend: Backend) {
    let port = free_port();
    let app = spawn_app_with(backend, |s| use_sink(s, port)).await;
    // Nothing listens yet: the requests still succeed.
    let account = app.account().await;
    let forgot = app.forgot_password(&account.email).await;
    assert_eq!(forgot.status().as_u16(), 202);
    let tried = "status = 'pending' AND attempts >= 1 AND last_error IS NOT NULL";
    wait_for_outbox(&app, tried, 2, "the mailer never tried").await;

    let sink = SmtpSink::start_on(port);
    let mails = sink.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mails_later = sink.received();
    assert_eq!(mails_later.len(), 2, "no duplicates: {mails:?}");
    let mut ids: Vec<&String> = mails_later.iter().map(|m| &m.message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2);
    let sent = app
        .query_integers("SELECT CAST(count(*) AS BIGINT) FROM email_outbox WHERE status = 'sent'")
        .await;
    assert_eq!(sent[0][0], 2);
}

async fn a_mail_that_keeps_failing_is_dead_lettered(backend: Backend) {
    let port = free_port();
    let app = spawn_app_with(backend, |s| {
        use_sink(s, port);
        s.mail.max_attempts = 2;
    })
    .await;
    app.account().await;
    wait_for_outbox(
        &app,
        "status = 'dead'",
        1,
        "the mail was never dead-lettered",
    )
    .await;
}

async fn an_invitation_signs_up_the_invited_address_with_its_role(backend: Backend) {
    let (app, sink) = spawn_app_mailing_with(backend, |s| {
        s.auth.require_email_verification = true;
    })
    .await;
    // With verification required, accounts made here are verified by hand.
    let verified_account = |email: &'static str, role: &'static str| {
        let app = &app;
        async move {
            app.assert_signup_works(email).await;
            app.execute(&format!(
                "UPDATE users SET role = '{role}', email_verified = TRUE WHERE email = '{email}'"
            ))
            .await;
            app.login_tokens(email).await.0
        }
    };
    let admin_token = verified_account("boss@example.com", "admin").await;
    let outsider_token = verified_account("outsider@example.com", "user").await;
    let invite = |body: Value| {
        app.authed(
            reqwest::Method::POST,
            "/admin/invitations",
            &admin_token,
            Some(body),
        )
    };
    let response = invite(
        json!({ "email": "Ivy@Example.com", "role": "admin", "metadata": { "team": "ops" } }),
    )
    .await;
    assert_eq!(response.status().as_u16(), 201);
    assert_error(
        invite(json!({ "email": "boss@example.com", "role": "user" })).await,
        409,
        "email_taken",
    )
    .await;
    assert_error(
        invite(json!({ "email": "x@example.com" })).await,
        400,
        "validation_failed",
    )
    .await;
    let response = app
        .authed(
            reqwest::Method::POST,
            "/admin/invitations",
            &outsider_token,
            Some(json!({ "email": "y@example.com", "role": "admin" })),
        )
        .await;
    assert_error(response, 403, "forbidden").await;

    let mails = sink.wait_for(3).await;
    let invitation = mails
        .iter()
        .find(|m| m.subject.contains("invited"))
        .expect("the invitation");
    assert_eq!(invitation.to, "Ivy@Example.com");
    assert!(invitation.text.contains("/accept-invitation?token="));
    let token = invitation.token();

    // Only the invited address may use it, and a wrong one does not burn it.
    let wrong = app
        .post_json(
            "/auth/signup",
            &json!({ "email": "other@example.com", "password": PASSWORD, "invitationToken": token }),
        )
        .await;
    assert_error(wrong, 400, "validation_failed").await;
    let validated = app.validate_token(&token).await;
    assert_eq!(validated.status().as_u16(), 200);
    let cookie = cookie_line(validated.headers(), "one_time_token").expect("a follow-up cookie");
    let body: Value = validated.json().await.unwrap();
    assert_eq!(body["tokenType"], "invitation");
    assert_eq!(body["metadata"]["role"], "admin");
    assert_eq!(body["metadata"]["team"], "ops");

    // Verification is required here, yet the invited signup signs in at once: the mail got there.
    let response = app
        .post_with_cookie(
            "/auth/signup",
            cookie.split(';').next().unwrap(),
            Some(&json!({ "email": "ivy@example.com", "password": PASSWORD })),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(body["user"]["emailVerified"], true);
    assert!(body["accessToken"].as_str().is_some());
    let second =
        json!({ "email": "ivy2@example.com", "password": PASSWORD, "invitationToken": token });
    let again = app.post_json("/auth/signup", &second).await;
    assert_error(again, 400, "token_invalid").await;
}

/// An admin who invited an address with the wrong role corrects it by inviting again: the first
/// invitation is withdrawn, whatever the case of the address either time.
async fn inviting_an_address_again_withdraws_the_earlier_invitation(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let admin = app.admin().await;
    for (email, role) in [("dave@example.com", "admin"), ("Dave@Example.com", "user")] {
        let invited = app
            .authed(
                reqwest::Method::POST,
                "/admin/invitations",
                &admin.access_token,
                Some(json!({ "email": email, "role": role })),
            )
            .await;
        assert_eq!(invited.status().as_u16(), 201);
    }
    let mut tokens = Vec::new();
    for n in [1, 2] {
        tokens.push(sink.nth_mail_to(n, "ave@", "invited").await.token());
    }
    // Mails may arrive in either order: the withdrawn one is the admin invitation.
    let mut roles = Vec::new();
    for token in &tokens {
        let body =
            json!({ "email": "dave@example.com", "password": PASSWORD, "invitationToken": token });
        let answer = app.post_json("/auth/signup", &body).await;
        if answer.status().as_u16() == 201 {
            let body: Value = answer.json().await.unwrap();
            roles.push(body["user"]["role"].as_str().unwrap().to_string());
        } else {
            assert_error(answer, 400, "token_invalid").await;
        }
    }
    assert_eq!(roles, ["user"], "only the second invitation signs up");
}

/// A deleted account's mailed links open nothing: a reset link from before the deletion is
/// refused by `POST /auth/tokens/validate` too (no page for a reset that can only fail).
async fn a_deleted_accounts_links_open_nothing(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let account = app.account().await;
    app.forgot_password(&account.email).await;
    let mails = sink.wait_for(2).await;
    let reset = mails.iter().find(|m| m.subject.contains("Reset")).unwrap();
    let verify = mails
        .iter()
        .find(|m| m.subject.contains("Confirm"))
        .unwrap();
    let deleted = app.delete_account(&account.access_token, PASSWORD).await;
    assert_eq!(deleted.status().as_u16(), 204);
    for token in [reset.token(), verify.token()] {
        assert_error(app.validate_token(&token).await, 400, "token_invalid").await;
    }
    assert_error(
        app.verify_email(&verify.token()).await,
        400,
        "token_invalid",
    )
    .await;
}

crate::backend_tests!(
    hidden_signups_with_a_taken_address_tell_its_holder_a_few_times,
    a_deleted_accounts_links_open_nothing,
    mail_to_an_unproven_address_carries_no_chosen_name,
    inviting_an_address_again_withdraws_the_earlier_invitation,
    an_invitation_signs_up_the_invited_address_with_its_role,
    signup_mails_a_verification_link_that_verifies_once,
    forgot_then_reset_signs_every_session_out,
    a_validated_token_becomes_a_one_hour_cookie_for_the_next_step,
    a_follow_up_expires_with_the_link_it_came_from,
    with_verification_required_signup_hides_taken_emails_and_login_waits_for_the_link,
    resend_mails_only_unverified_accounts_and_answers_alike,
    a_mailbox_gets_at_most_a_few_link_mails_per_window,
    a_reset_on_a_never_verified_account_removes_the_factors_set_before_it,
    mail_waits_in_the_outbox_while_smtp_is_down_and_arrives_exactly_once,
    a_mail_that_keeps_failing_is_dead_lettered,
);
