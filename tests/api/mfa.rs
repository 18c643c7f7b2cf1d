//! Multi-factor authentication: TOTP enrolment, the second step of a login, replay-proof codes,
//! recovery codes, `amr`/`aal` in access tokens, step-up for sensitive actions, and the admin's
//! reset. Codes are computed here from the enrolment's secret, as an authenticator app would.

use std::time::Duration;

use authd::domain::assurance::MfaRequirement;
use reqwest::Method;
use serde_json::{json, Value};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::helpers::{
    access_token_of, assert_error, claims_of, refresh_cookie, spawn_app, spawn_app_with, Account,
    Backend, TestApp, NEW_PASSWORD, PASSWORD,
};
use crate::smtp::spawn_app_mailing;

/// `aal` and `amr` of an access token.
fn assurance_of(token: &str) -> (u64, Vec<String>) {
    let claims = claims_of(token);
    let amr = claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (claims["aal"].as_u64().expect("aal"), amr)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The authenticator app: the code `steps` time steps (30 s) from now.
pub(crate) fn code(secret: &str, steps: i64) -> String {
    let bytes = Secret::Encoded(secret.to_string()).to_bytes().unwrap();
    let totp = TOTP::new_unchecked(Algorithm::SHA1, 6, 0, 30, bytes, None, String::new());
    totp.generate((now() as i64 + steps * 30) as u64)
}

/// A code that is not the authenticator's (the right code plus one, modulo a million).
fn wrong_code(secret: &str) -> String {
    let right: u32 = code(secret, 0).parse().unwrap();
    format!("{:06}", (right + 1) % 1_000_000)
}

/// An account with TOTP on: its secret, its recovery codes and its aal-2 access token.
struct Enrolled {
    account: Account,
    secret: String,
    recovery_codes: Vec<String>,
    access_token: String,
}

/// Settings of these tests: two steps either way, so that one test can use several codes of
/// its own in a row (each later than the last), whatever the second it runs at.
fn wide_window(settings: &mut authd::config::Settings) {
    settings.auth.mfa.totp_skew_steps = 2;
}

/// These tests' settings, with `auth.mfa.required` set to `requirement`.
fn requiring(requirement: MfaRequirement) -> impl FnOnce(&mut authd::config::Settings) {
    move |settings| {
        wide_window(settings);
        settings.auth.mfa.required = requirement;
    }
}

impl TestApp {
    /// Starts a TOTP enrolment (201): its `secret` and `otpauthUri`, to be confirmed.
    async fn start_totp(&self, token: &str) -> Value {
        let started = self.post_bearer("/me/mfa/totp", token).await;
        assert_eq!(started.status().as_u16(), 201, "enrolment starts");
        started.json().await.unwrap()
    }

    /// Turns TOTP on from the session of `token`: the secret, and the confirmation's answer (its
    /// aal-2 access token and the recovery codes).
    pub(crate) async fn enrol_totp(&self, token: &str) -> (String, Value) {
        let started = self.start_totp(token).await;
        let secret = started["secret"].as_str().unwrap().to_string();
        let confirmed = self.confirm_totp(token, &code(&secret, 0)).await;
        assert_eq!(confirmed.status().as_u16(), 200, "enrolment confirmed");
        (secret, confirmed.json().await.unwrap())
    }

    async fn enrol(&self) -> Enrolled {
        let account = self.account().await;
        let (secret, confirmed) = self.enrol_totp(&account.access_token).await;
        Enrolled {
            access_token: confirmed["accessToken"].as_str().unwrap().to_string(),
            recovery_codes: confirmed["recoveryCodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect(),
            account,
            secret,
        }
    }

    async fn confirm_totp(&self, token: &str, code: &str) -> reqwest::Response {
        let body = json!({ "code": code });
        self.authed(Method::POST, "/me/mfa/totp/confirm", token, Some(body))
            .await
    }

    /// Logs in with the password of an MFA account: the `mfaToken` of the second step.
    async fn first_step(&self, email: &str) -> String {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            refresh_cookie(response.headers()).is_none(),
            "no session after the password alone"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["mfaRequired"], true, "{body}");
        assert!(body.get("accessToken").is_none(), "{body}");
        body["mfaToken"].as_str().unwrap().to_string()
    }

    async fn second_step(&self, mfa_token: &str, proof: Value) -> reqwest::Response {
        let mut body = json!({ "mfaToken": mfa_token });
        body.as_object_mut()
            .unwrap()
            .extend(proof.as_object().unwrap().clone());
        self.post_json("/auth/mfa/verify", &body).await
    }

    /// Both steps, the second with `proof`: the access token.
    async fn mfa_login(&self, email: &str, proof: Value) -> String {
        let mfa_token = self.first_step(email).await;
        let response = self.second_step(&mfa_token, proof).await;
        assert_eq!(response.status().as_u16(), 200, "second step");
        assert!(refresh_cookie(response.headers()).is_some(), "a session");
        let body: Value = response.json().await.unwrap();
        body["accessToken"].as_str().unwrap().to_string()
    }

    /// The access token a refresh with the cookie `refresh_token` gives.
    async fn refreshed(&self, refresh_token: &str) -> String {
        access_token_of(self.refresh_with_cookie(refresh_token).await).await
    }
}

async fn totp_enrolment_is_confirmed_by_a_code_and_then_a_login_needs_one(backend: Backend) {
    let app = spawn_app_with(backend, wide_window).await;
    let account = app.account().await;
    let before = app.get_json("/me/mfa", &account.access_token).await;
    assert_eq!(before["totp"]["enabled"], false);

    let started = app.start_totp(&account.access_token).await;
    let secret = started["secret"].as_str().unwrap();
    let uri = started["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/authd:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    // Not on until confirmed: the password alone still signs in.
    app.assert_login_works(&account.email, PASSWORD).await;
    let pending = app.get_json("/me/mfa", &account.access_token).await;
    assert_eq!(pending["totp"]["enabled"], false);

    let wrong = app
        .confirm_totp(&account.access_token, &wrong_code(secret))
        .await;
    let body = assert_error(wrong, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "code");

    let confirmed = app
        .confirm_totp(&account.access_token, &code(secret, 0))
        .await;
    assert_eq!(confirmed.status().as_u16(), 200);
    let confirmed: Value = confirmed.json().await.unwrap();
    assert_eq!(confirmed["recoveryCodes"].as_array().unwrap().len(), 10);
    let upgraded = confirmed["accessToken"].as_str().unwrap();
    assert_eq!(
        assurance_of(upgraded),
        (2, vec!["pwd".into(), "otp".into(), "mfa".into()])
    );
    let on = app.get_json("/me/mfa", upgraded).await;
    assert_eq!(on["totp"]["enabled"], true);
    assert_eq!(on["recoveryCodesLeft"], 10);
    let again = app.post_bearer("/me/mfa/totp", upgraded).await;
    assert_error(again, 409, "mfa_already_enabled").await;

    let response = app.login(&account.email, PASSWORD).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(body["expiresIn"], 300);
    let mfa_token = body["mfaToken"].as_str().unwrap();
    let wrong = app
        .second_step(mfa_token, json!({ "code": wrong_code(secret) }))
        .await;
    assert_error(wrong, 401, "invalid_mfa_code").await;
    let done = app
        .second_step(mfa_token, json!({ "code": code(secret, 1) }))
        .await;
    assert_eq!(done.status().as_u16(), 200);
    let body: Value = done.json().await.unwrap();
    assert_eq!(body["user"]["email"], account.email.as_str());
    let access = body["accessToken"].as_str().unwrap();
    assert_eq!(assurance_of(access).0, 2);
    assert_eq!(app.me(access).await.status().as_u16(), 200);
    // The mfaToken was used up by its login.
    let reused = app
        .second_step(mfa_token, json!({ "code": code(secret, 2) }))
        .await;
    assert_error(reused, 401, "mfa_token_invalid").await;

    let kinds = app.event_kinds(access).await;
    for kind in ["mfa_enabled", "mfa_failed", "login_succeeded"] {
        assert!(kinds.contains(&kind.to_string()), "{kind} in {kinds:?}");
    }
    // The recorder is process-wide: other tests count too, so this asserts presence only.
    let metrics = app.fetch("/metrics").await.text().await.unwrap();
    for outcome in ["passed", "failed"] {
        assert!(
            metrics
                .lines()
                .any(|line| line.starts_with("authd_mfa_outcomes_total")
                    && line.contains(r#"step="login""#)
                    && line.contains(&format!(r#"outcome="{outcome}""#))),
            "login {outcome} in the metrics"
        );
    }
}

async fn a_used_code_fails_the_second_time_also_when_two_arrive_at_once(backend: Backend) {
    let app = spawn_app_with(backend, wide_window).await;
    let enrolled = app.enrol().await;
    let email = &enrolled.account.email;
    let first = app.first_step(email).await;
    let used = code(&enrolled.secret, 1);
    let ok = app.second_step(&first, json!({ "code": used })).await;
    assert_eq!(ok.status().as_u16(), 200);

    // The same code on a new login: refused, and so is any earlier one.
    let replay = app.first_step(email).await;
    let refused = app.second_step(&replay, json!({ "code": used })).await;
    assert_error(refused, 401, "invalid_mfa_code").await;
    let earlier = app
        .second_step(&replay, json!({ "code": code(&enrolled.secret, 0) }))
        .await;
    assert_error(earlier, 401, "invalid_mfa_code").await;

    // One new code sent by two logins at once: exactly one of them signs in.
    let racing = code(&enrolled.secret, 2);
    let (a, b) = (app.first_step(email).await, app.first_step(email).await);
    let (ra, rb) = tokio::join!(
        app.second_step(&a, json!({ "code": racing })),
        app.second_step(&b, json!({ "code": racing })),
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "one code, one session");
}

async fn recovery_codes_work_once_each_are_mailed_about_and_can_be_replaced(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let enrolled = app.enrol().await;
    let email = &enrolled.account.email;
    // The verification mail and the "two-step verification is on" notice.
    sink.wait_for(2).await;

    let first = &enrolled.recovery_codes[0];
    let access = app
        .mfa_login(email, json!({ "recoveryCode": first.to_uppercase() }))
        .await;
    assert_eq!(
        assurance_of(&access),
        (2, vec!["pwd".into(), "otp".into(), "mfa".into()])
    );
    let mails = sink.wait_for(3).await;
    assert!(
        mails
            .iter()
            .any(|m| m.to == *email && m.subject.contains("A recovery code was used")),
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let again = app.first_step(email).await;
    let refused = app
        .second_step(&again, json!({ "recoveryCode": first }))
        .await;
    assert_error(refused, 401, "invalid_mfa_code").await;
    app.mfa_login(email, json!({ "recoveryCode": enrolled.recovery_codes[1] }))
        .await;
    let status = app.get_json("/me/mfa", &access).await;
    assert_eq!(status["recoveryCodesLeft"], 8);

    let renewed = app
        .post_bearer("/me/mfa/recovery-codes", &enrolled.access_token)
        .await;
    assert_eq!(renewed.status().as_u16(), 200);
    let renewed: Value = renewed.json().await.unwrap();
    let new_codes = renewed["recoveryCodes"].as_array().unwrap();
    assert_eq!(new_codes.len(), 10);
    let old = app.first_step(email).await;
    let refused = app
        .second_step(&old, json!({ "recoveryCode": enrolled.recovery_codes[2] }))
        .await;
    assert_error(refused, 401, "invalid_mfa_code").await;
    app.mfa_login(email, json!({ "recoveryCode": new_codes[0] }))
        .await;
    let kinds = app.event_kinds(&access).await;
    assert!(
        kinds.contains(&"recovery_code_used".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"recovery_codes_regenerated".to_string()),
        "{kinds:?}"
    );
}

async fn a_password_alone_never_yields_a_session_for_an_mfa_account(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        wide_window(s);
        s.auth.mfa.challenge_max_attempts = 3;
    })
    .await;
    let enrolled = app.enrol().await;
    let email = &enrolled.account.email;

    // Also for a client that asks for its refresh token in the body.
    let response = app
        .post_json(
            "/auth/login",
            &json!({ "email": email, "password": PASSWORD, "tokenTransport": "body" }),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(refresh_cookie(response.headers()).is_none());
    let body: Value = response.json().await.unwrap();
    assert!(
        body.get("refreshToken").is_none() && body.get("accessToken").is_none(),
        "{body}"
    );
    let mfa_token = body["mfaToken"].as_str().unwrap();
    // The mfaToken opens nothing else.
    app.assert_access_refused(mfa_token).await;
    app.assert_refresh_refused(mfa_token).await;
    let no_code = app.second_step(mfa_token, json!({})).await;
    assert_error(no_code, 400, "validation_failed").await;
    let both = app
        .second_step(mfa_token, json!({ "code": "123456", "recoveryCode": "x" }))
        .await;
    assert_error(both, 400, "validation_failed").await;

    // A few attempts, then the login starts over, even with the right code.
    for _ in 0..3 {
        let wrong = app
            .second_step(mfa_token, json!({ "code": wrong_code(&enrolled.secret) }))
            .await;
        assert_error(wrong, 401, "invalid_mfa_code").await;
    }
    let late = app
        .second_step(mfa_token, json!({ "code": code(&enrolled.secret, 1) }))
        .await;
    assert_error(late, 401, "mfa_token_invalid").await;
    let junk = app
        .second_step("not-a-token", json!({ "code": "123456" }))
        .await;
    assert_error(junk, 401, "mfa_token_invalid").await;

    // A locked account gets no session from its second step either.
    let admin = app.admin().await;
    let pending = app.first_step(email).await;
    app.lock_user(&admin.access_token, enrolled.account.user_id)
        .await;
    let locked = app
        .second_step(&pending, json!({ "code": code(&enrolled.secret, 1) }))
        .await;
    assert_error(locked, 401, "mfa_token_invalid").await;
}

/// A login waiting for its second factor proved a password: the owner's recovery ends it as it
/// ends the sessions (signing out everywhere, a password change), so whoever phished the password
/// and is still at the second step gets nothing once the owner acts.
async fn a_waiting_second_step_ends_with_the_owners_recovery(backend: Backend) {
    let app = spawn_app_with(backend, wide_window).await;
    let enrolled = app.enrol().await;
    let email = &enrolled.account.email;
    let recovery = |n: usize| json!({ "recoveryCode": enrolled.recovery_codes[n] });

    let waiting = app.first_step(email).await;
    let ended = app
        .post_bearer("/auth/logout-all", &enrolled.access_token)
        .await;
    assert!(ended.status().is_success(), "{}", ended.status());
    let late = app.second_step(&waiting, recovery(0)).await;
    assert_error(late, 401, "mfa_token_invalid").await;

    let waiting = app.first_step(email).await;
    let owner = app.mfa_login(email, recovery(1)).await;
    let changed = app.change_password(&owner, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status().as_u16(), 200);
    let late = app.second_step(&waiting, recovery(2)).await;
    assert_error(late, 401, "mfa_token_invalid").await;
    // The recovery code that was refused is still unused.
    let response = app.login(email, NEW_PASSWORD).await;
    let body: Value = response.json().await.unwrap();
    let fresh = body["mfaToken"].as_str().unwrap();
    let response = app.second_step(fresh, recovery(2)).await;
    assert_eq!(response.status().as_u16(), 200);
}

async fn an_mfa_token_expires(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.auth.mfa.challenge_ttl_seconds = 1).await;
    let enrolled = app.enrol().await;
    let mfa_token = app.first_step(&enrolled.account.email).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = app
        .second_step(&mfa_token, json!({ "code": code(&enrolled.secret, 1) }))
        .await;
    assert_error(late, 401, "mfa_token_invalid").await;
}

async fn amr_and_aal_are_right_on_every_path(backend: Backend) {
    let app = spawn_app_with(backend, wide_window).await;
    let password_only = (1, vec!["pwd".to_string()]);
    let two_factors = (2, vec!["pwd".into(), "otp".into(), "mfa".into()]);
    let account = app.account().await;
    assert_eq!(assurance_of(&account.access_token), password_only, "signup");
    let signed_up_at = claims_of(&account.access_token)["auth_time"]
        .as_i64()
        .unwrap();
    assert!((signed_up_at - now() as i64).abs() <= 5);
    let (login_access, login_refresh) = app.login_tokens(&account.email).await;
    assert_eq!(assurance_of(&login_access), password_only, "login");
    let refreshed = app.refreshed(&login_refresh).await;
    assert_eq!(assurance_of(&refreshed), password_only, "refresh");

    let enrolled = app.enrol().await;
    assert_eq!(
        assurance_of(&enrolled.access_token),
        two_factors,
        "enrolment"
    );
    // The enrolling session keeps its level across a rotation.
    let rotated = app.refreshed(&enrolled.account.refresh_token).await;
    assert_eq!(
        assurance_of(&rotated),
        two_factors,
        "refresh after enrolment"
    );
    let mfa_token = app.first_step(&enrolled.account.email).await;
    let response = app
        .post_json(
            "/auth/mfa/verify",
            &json!({ "mfaToken": mfa_token, "code": code(&enrolled.secret, 1) }),
        )
        .await;
    let mfa_refresh = refresh_cookie(response.headers()).unwrap();
    let body: Value = response.json().await.unwrap();
    let mfa_access = body["accessToken"].as_str().unwrap();
    assert_eq!(assurance_of(mfa_access), two_factors, "login with TOTP");
    let rotated = &app.refreshed(&mfa_refresh).await;
    assert_eq!(
        assurance_of(rotated),
        two_factors,
        "refresh of an MFA login"
    );
    assert_eq!(
        claims_of(rotated)["auth_time"],
        claims_of(mfa_access)["auth_time"],
        "a refresh is not an authentication"
    );
}

async fn sensitive_actions_need_a_recent_sign_in(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.auth.reauthentication_seconds = 2).await;
    let account = app.account().await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let stale = app
        .change_password(&account.access_token, PASSWORD, NEW_PASSWORD)
        .await;
    assert_error(stale, 403, "reauthentication_required").await;
    let enrol = app.post_bearer("/me/mfa/totp", &account.access_token).await;
    assert_error(enrol, 403, "reauthentication_required").await;
    let delete = app.delete_account(&account.access_token, PASSWORD).await;
    assert_error(delete, 403, "reauthentication_required").await;

    let wrong = app
        .reauthenticate(
            &account.access_token,
            json!({ "password": "not it at all" }),
        )
        .await;
    assert_error(wrong, 400, "validation_failed").await;
    let fresh = &app
        .step_up(&account.access_token, json!({ "password": PASSWORD }))
        .await;
    let auth_time = |token: &str| claims_of(token)["auth_time"].as_i64().unwrap();
    assert!(auth_time(fresh) > auth_time(&account.access_token));
    assert_eq!(
        claims_of(fresh)["sid"],
        claims_of(&account.access_token)["sid"]
    );
    let enrol = app.post_bearer("/me/mfa/totp", fresh).await;
    assert_eq!(enrol.status().as_u16(), 201);
}

async fn with_a_factor_on_the_account_stepping_up_takes_it_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let enrolled = app.enrol().await;
    // The signup's session is recent but level 1: it opened before the factor existed.
    let level_one = &enrolled.account.access_token;
    assert_eq!(assurance_of(level_one).0, 1);
    let removal = app.delete("/me/mfa/totp", level_one).await;
    assert_error(removal, 403, "reauthentication_required").await;
    let change = app.change_password(level_one, PASSWORD, NEW_PASSWORD).await;
    assert_error(change, 403, "reauthentication_required").await;
    // The address is how the account is recovered: the password alone does not move it either.
    let email_change = json!({ "newEmail": "moved@example.org", "password": PASSWORD });
    let post = reqwest::Method::POST;
    let moved = app
        .authed(
            post.clone(),
            "/me/email",
            level_one,
            Some(email_change.clone()),
        )
        .await;
    assert_error(moved, 403, "reauthentication_required").await;

    let password_only = app
        .reauthenticate(level_one, json!({ "password": PASSWORD }))
        .await;
    let body = assert_error(password_only, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "code");
    let bad_code = json!({ "password": PASSWORD, "code": wrong_code(&enrolled.secret) });
    let bad_code = app.reauthenticate(level_one, bad_code).await;
    assert_error(bad_code, 401, "invalid_mfa_code").await;
    let good = json!({ "password": PASSWORD, "code": code(&enrolled.secret, 1) });
    let stepped_up = &app.step_up(level_one, good).await;
    assert_eq!(assurance_of(stepped_up).0, 2);
    let moved = app
        .authed(post, "/me/email", stepped_up, Some(email_change))
        .await;
    assert_eq!(moved.status().as_u16(), 202);
    let removed = app.delete("/me/mfa/totp", stepped_up).await;
    assert_eq!(removed.status().as_u16(), 204);
    let status = app.get_json("/me/mfa", stepped_up).await;
    assert_eq!(status["totp"]["enabled"], false);
    assert_eq!(
        status["recoveryCodesLeft"], 0,
        "the codes go with the last factor"
    );
    app.assert_login_works(&enrolled.account.email, PASSWORD)
        .await;
    let kinds = app.event_kinds(stepped_up).await;
    for kind in ["mfa_disabled", "reauthenticated", "mfa_failed"] {
        assert!(kinds.contains(&kind.to_string()), "{kind} in {kinds:?}");
    }
}

async fn admin_actions_need_a_recent_sign_in_when_configured(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.auth.reauthentication_seconds = 1;
        s.auth.admin_reauthentication = true;
    })
    .await;
    let admin = app.admin().await;
    let user = app.account().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let path = format!("/admin/users/{}", user.user_id);
    let read = app.get(&path, &admin.access_token).await;
    assert_eq!(read.status().as_u16(), 200, "reading needs no step-up");
    let change = app
        .patch(&path, &admin.access_token, json!({ "locked": true }))
        .await;
    assert_error(change, 403, "reauthentication_required").await;
    let fresh = app
        .step_up(&admin.access_token, json!({ "password": PASSWORD }))
        .await;
    let change = app.patch(&path, &fresh, json!({ "locked": true })).await;
    assert_eq!(change.status().as_u16(), 200);
}

async fn an_admin_sees_and_resets_a_users_factors_and_the_user_is_told(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let admin = app.admin().await;
    let enrolled = app.enrol().await;
    let path = format!("/admin/users/{}/mfa", enrolled.account.user_id);
    let seen = app.get_json(&path, &admin.access_token).await;
    assert_eq!(seen["totp"]["enabled"], true);
    assert_eq!(seen["recoveryCodesLeft"], 10);
    let not_admin = app.get(&path, &enrolled.access_token).await;
    assert_error(not_admin, 403, "forbidden").await;
    let nobody = format!("/admin/users/{}/mfa", uuid::Uuid::new_v4());
    app.assert_get_error(&nobody, &admin.access_token, 404, "not_found")
        .await;
    // Not their own: `DELETE /me/mfa/...` asks for a recent sign-in at level 2, this would not.
    let own = format!("/admin/users/{}/mfa", admin.user_id);
    let response = app.delete(&own, &admin.access_token).await;
    assert_error(response, 400, "validation_failed").await;

    let reset = app.delete(&path, &admin.access_token).await;
    assert_eq!(reset.status().as_u16(), 204);
    let again = app.delete(&path, &admin.access_token).await;
    assert_error(again, 404, "not_found").await;
    let (access, _) = app.login_tokens(&enrolled.account.email).await;
    assert_eq!(assurance_of(&access).0, 1, "the password alone again");
    let mails = sink.wait_for(4).await;
    assert!(
        mails.iter().any(|m| m.to == enrolled.account.email
            && m.subject.contains("Two-step verification was turned off")),
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let kinds = app.event_kinds(&access).await;
    assert!(kinds.contains(&"admin_mfa_reset".to_string()), "{kinds:?}");
}

async fn an_unconfirmed_enrolment_changes_nothing_and_can_be_restarted(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let nothing_pending = app.confirm_totp(&account.access_token, "123456").await;
    assert_error(nothing_pending, 404, "not_found").await;
    let first = app.start_totp(&account.access_token).await;
    let second = app.start_totp(&account.access_token).await;
    assert_ne!(first["secret"], second["secret"]);
    // Only the latest enrolment confirms.
    let stale = app
        .confirm_totp(
            &account.access_token,
            &code(first["secret"].as_str().unwrap(), 0),
        )
        .await;
    assert_error(stale, 400, "validation_failed").await;
    let removal = app.delete("/me/mfa/totp", &account.access_token).await;
    assert_error(removal, 404, "not_found").await;
    let regenerate = app
        .post_bearer("/me/mfa/recovery-codes", &account.access_token)
        .await;
    assert_error(regenerate, 404, "not_found").await;
    app.assert_login_works(&account.email, PASSWORD).await;
}

/// `auth.mfa.required = "admins"`: an admin's session below level 2 may only see itself, enrol
/// and sign out, from its next request (also one promoted after signing in); users are free.
async fn required_mfa_holds_a_covered_session_to_enrolment(backend: Backend) {
    let app = spawn_app_with(backend, requiring(MfaRequirement::Admins)).await;
    let user = app.account().await;
    assert_eq!(
        app.get_status("/auth/sessions", &user.access_token).await,
        200
    );
    let status = app.get_json("/me/mfa", &user.access_token).await;
    assert_eq!(status["required"], false, "{status}");

    // Promoted after signing in: held to the requirement at once.
    let admin = app.admin().await;
    let held = &admin.access_token;
    for (method, path) in [
        (Method::GET, "/admin/users"),
        (Method::GET, "/auth/sessions"),
        (Method::GET, "/me/events"),
        (Method::POST, "/me/mfa/recovery-codes"),
    ] {
        let response = app.authed(method.clone(), path, held, None).await;
        assert_error(response, 403, "mfa_enrollment_required").await;
    }
    let change = app
        .authed(
            Method::POST,
            "/auth/password/change",
            held,
            Some(
                json!({ "currentPassword": PASSWORD, "newPassword": "another long passphrase 9" }),
            ),
        )
        .await;
    assert_error(change, 403, "mfa_enrollment_required").await;
    assert_eq!(
        app.me(held).await.status().as_u16(),
        200,
        "it may see itself"
    );
    let status = app.get_json("/me/mfa", held).await;
    assert_eq!(status["required"], true, "{status}");

    // It may enrol, and the enrolment's token (and its refresh) go everywhere.
    let (_, confirmed) = app.enrol_totp(held).await;
    let upgraded = confirmed["accessToken"].as_str().unwrap();
    assert_eq!(app.get_status("/admin/users", upgraded).await, 200);
    let rotated = &app.refreshed(&admin.refresh_token).await;
    assert_eq!(app.get_status("/auth/sessions", rotated).await, 200);
    // The token from before the enrolment still says level 1.
    app.assert_held_to_enrolment(held).await;
    let other = format!("/admin/users/{}/mfa", admin.user_id);
    assert_eq!(app.get_json(&other, upgraded).await["required"], true);
    let user_status = format!("/admin/users/{}/mfa", user.user_id);
    assert_eq!(
        app.get_json(&user_status, upgraded).await["required"],
        false
    );

    // A held session can still sign out everywhere.
    let second_admin = app.admin().await;
    let out = app
        .authed(
            Method::POST,
            "/auth/logout-all",
            &second_admin.access_token,
            None,
        )
        .await;
    assert_eq!(out.status().as_u16(), 200);
    let kinds = app.event_kinds(rotated).await;
    assert!(kinds.contains(&"mfa_enabled".to_string()), "{kinds:?}");
}

/// `auth.mfa.required = "everyone"`: a new account signs up into a session that can only enrol;
/// once it has, a login takes the second step like any other.
async fn required_mfa_for_everyone_starts_at_enrolment(backend: Backend) {
    let app = spawn_app_with(backend, requiring(MfaRequirement::Everyone)).await;
    let account = app.account().await;
    app.assert_held_to_enrolment(&account.access_token).await;
    let (fresh_login, _) = app.login_tokens(&account.email).await;
    app.assert_held_to_enrolment(&fresh_login).await;

    let enrolled = app.enrol().await;
    assert_eq!(
        app.get_status("/auth/sessions", &enrolled.access_token)
            .await,
        200
    );
    let access = app
        .mfa_login(
            &enrolled.account.email,
            json!({ "code": code(&enrolled.secret, 1) }),
        )
        .await;
    assert_eq!(app.get_status("/auth/sessions", &access).await, 200);
}

crate::backend_tests!(
    totp_enrolment_is_confirmed_by_a_code_and_then_a_login_needs_one,
    a_used_code_fails_the_second_time_also_when_two_arrive_at_once,
    recovery_codes_work_once_each_are_mailed_about_and_can_be_replaced,
    a_password_alone_never_yields_a_session_for_an_mfa_account,
    an_mfa_token_expires,
    a_waiting_second_step_ends_with_the_owners_recovery,
    amr_and_aal_are_right_on_every_path,
    sensitive_actions_need_a_recent_sign_in,
    with_a_factor_on_the_account_stepping_up_takes_it_too,
    admin_actions_need_a_recent_sign_in_when_configured,
    an_admin_sees_and_resets_a_users_factors_and_the_user_is_told,
    an_unconfirmed_enrolment_changes_nothing_and_can_be_restarted,
    required_mfa_holds_a_covered_session_to_enrolment,
    required_mfa_for_everyone_starts_at_enrolment,
);
