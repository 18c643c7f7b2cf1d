//! Passwordless sign-in by email (a link and a 6-digit code) and changing an account's address,
//! through real HTTP with the mail caught by the SMTP sink.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    access_token_of, assert_error, claims_of, refresh_cookie, spawn_app_with, Account, Backend,
    TestApp, NEW_PASSWORD, PASSWORD,
};
use crate::smtp::{spawn_app_mailing, spawn_app_mailing_with, ReceivedMail, SmtpSink};

/// An authd with sign-in mail on, mailing to a sink of its own, then `customize` on its settings.
async fn spawn_passwordless(
    backend: Backend,
    customize: impl FnOnce(&mut authd::config::Settings),
) -> (TestApp, SmtpSink) {
    spawn_app_mailing_with(backend, move |settings| {
        settings.auth.passwordless.enabled = true;
        customize(settings);
    })
    .await
}

/// The 6-digit code of a sign-in mail.
fn code_of(mail: &ReceivedMail) -> String {
    let start = mail.text.find("code: ").expect("a code") + "code: ".len();
    mail.text[start..start + 6].to_string()
}

/// The last mail to `to` whose subject has `subject`, once `count` mails have come.
async fn mail_to(sink: &SmtpSink, count: usize, to: &str, subject: &str) -> ReceivedMail {
    sink.wait_for(count)
        .await
        .into_iter()
        .rfind(|mail| mail.to.contains(to) && mail.subject.contains(subject))
        .unwrap_or_else(|| panic!("a mail to {to} about {subject:?}"))
}

impl TestApp {
    async fn ask_email_login(&self, email: &str) -> reqwest::Response {
        self.post_json("/auth/email/login", &json!({ "email": email }))
            .await
    }

    async fn email_login(&self, proof: Value) -> reqwest::Response {
        self.post_json("/auth/email/login/verify", &proof).await
    }

    /// Asks for a sign-in mail for `email`, waits for it (the sink's mail number `count`) and
    /// follows its link.
    async fn sign_in_by_mail(
        &self,
        sink: &SmtpSink,
        count: usize,
        email: &str,
    ) -> reqwest::Response {
        self.ask_email_login(email).await;
        let mail = mail_to(sink, count, email, "sign-in").await;
        self.email_login(json!({ "token": mail.token() })).await
    }

    async fn request_email_change(&self, token: &str, body: Value) -> reqwest::Response {
        self.authed(Method::POST, "/me/email", token, Some(body))
            .await
    }

    async fn confirm_email_change(
        &self,
        mail_token: &str,
        bearer: Option<&str>,
    ) -> reqwest::Response {
        let body = json!({ "token": mail_token });
        match bearer {
            Some(bearer) => {
                self.authed(
                    Method::POST,
                    "/auth/email/change/confirm",
                    bearer,
                    Some(body),
                )
                .await
            }
            None => self.post_json("/auth/email/change/confirm", &body).await,
        }
    }
}

/// An account whose address is proved (its verification mail followed, once the sink has
/// `mails_before` others): a sign-in mail then signs in to it rather than claiming it.
async fn verified_account(app: &TestApp, sink: &SmtpSink, mails_before: usize) -> Account {
    let account = app.account().await;
    let mail = mail_to(sink, mails_before + 1, &account.email, "Confirm your email").await;
    assert_eq!(app.verify_email(&mail.token()).await.status().as_u16(), 200);
    account
}

async fn a_mailed_link_or_code_signs_in_once(backend: Backend) {
    let (app, sink) = spawn_passwordless(backend, |_| {}).await;
    let account = verified_account(&app, &sink, 0).await;

    let asked = app.ask_email_login(&account.email).await;
    assert_eq!(asked.status().as_u16(), 202);
    let mail = mail_to(&sink, 2, &account.email, "sign-in").await;
    let signed_in = app.email_login(json!({ "token": mail.token() })).await;
    assert_eq!(signed_in.status().as_u16(), 200);
    assert!(refresh_cookie(signed_in.headers()).is_some(), "a session");
    let claims = claims_of(&access_token_of(signed_in).await);
    assert_eq!(claims["amr"], json!(["email"]), "the mailbox, one factor");
    assert_eq!(claims["aal"], 1);
    let again = app.email_login(json!({ "token": mail.token() })).await;
    assert_error(again, 400, "token_invalid").await;

    // The code of a fresh mail works too, once.
    app.ask_email_login(&account.email).await;
    let mail = mail_to(&sink, 3, &account.email, "sign-in").await;
    let proof = json!({ "email": account.email, "code": code_of(&mail) });
    assert_eq!(app.email_login(proof.clone()).await.status().as_u16(), 200);
    assert_error(app.email_login(proof).await, 400, "token_invalid").await;
    let kinds = app.event_kinds(&account.access_token).await;
    assert!(
        kinds.iter().filter(|k| *k == "login_succeeded").count() >= 2,
        "{kinds:?}"
    );
}

async fn a_code_allows_a_few_submissions_and_a_new_mail_voids_the_old_one(backend: Backend) {
    let (app, sink) = spawn_passwordless(backend, |settings| {
        settings.auth.passwordless.max_code_attempts = 3;
    })
    .await;
    let account = app.account().await;

    app.ask_email_login(&account.email).await;
    let first = mail_to(&sink, 2, &account.email, "sign-in").await;
    app.ask_email_login(&account.email).await;
    let second = mail_to(&sink, 3, &account.email, "sign-in").await;
    // One live mail per account: the first one's link and code are void.
    assert_error(
        app.email_login(json!({ "token": first.token() })).await,
        400,
        "token_invalid",
    )
    .await;

    let right = code_of(&second);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    for _ in 0..3 {
        let proof = json!({ "email": account.email, "code": wrong });
        assert_error(app.email_login(proof).await, 400, "token_invalid").await;
    }
    // Out of submissions: even the right code no longer works.
    let proof = json!({ "email": account.email, "code": right });
    assert_error(app.email_login(proof).await, 400, "token_invalid").await;
    let kinds = app.event_kinds(&account.access_token).await;
    assert!(
        kinds.contains(&"login_failed".to_string()),
        "wrong codes are audited: {kinds:?}"
    );
}

/// Account pre-hijacking: someone signs up with another person's address (no mailbox needed
/// while verification is not required), sets a second factor, and keeps a session. When the
/// address's owner signs in with a mail, all of that stops working.
async fn a_sign_in_mail_takes_an_unverified_account_from_whoever_signed_it_up(backend: Backend) {
    let (app, sink) = spawn_passwordless(backend, |_| {}).await;
    let squatter = app.account().await;
    let (secret, _) = app.enrol_totp(&squatter.access_token).await;

    // The verification mail, the notice that two-step verification is on, the sign-in mail.
    let owner = app.sign_in_by_mail(&sink, 3, &squatter.email).await;
    assert_eq!(owner.status().as_u16(), 200);
    assert!(
        refresh_cookie(owner.headers()).is_some(),
        "the squatter's second factor is gone: the owner is signed in"
    );
    let body: Value = owner.json().await.unwrap();
    assert_eq!(body["user"]["emailVerified"], true);

    // The squatter's session, refresh token, password and second factor are all dead.
    let me = app.authed(Method::GET, "/me", &squatter.access_token, None);
    assert_eq!(me.await.status().as_u16(), 401);
    let refresh = app
        .post_json(
            "/auth/refresh",
            &json!({ "refreshToken": squatter.refresh_token }),
        )
        .await;
    assert_eq!(refresh.status().as_u16(), 401);
    assert_error(
        app.login(&squatter.email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let owner_token = body["accessToken"].as_str().unwrap();
    let status: Value = app
        .authed(Method::GET, "/me/mfa", owner_token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["totp"]["enabled"], false, "{status}");
    assert!(secret.len() > 10, "the squatter had a TOTP secret");

    // A verified account keeps its password when its owner signs in by mail.
    let sink_count = 3;
    let kept = verified_account(&app, &sink, sink_count).await;
    let signed_in = app.sign_in_by_mail(&sink, sink_count + 2, &kept.email);
    assert_eq!(signed_in.await.status().as_u16(), 200);
    assert_eq!(
        app.login(&kept.email, PASSWORD).await.status().as_u16(),
        200
    );
    let me = app.authed(Method::GET, "/me", &kept.access_token, None);
    assert_eq!(me.await.status().as_u16(), 200);
}

async fn unknown_addresses_get_the_same_answer_and_nothing_else(backend: Backend) {
    let (app, sink) = spawn_passwordless(backend, |settings| {
        settings.auth.passwordless.max_mails = 2;
    })
    .await;
    let account = app.account().await;
    let known: Value = app
        .ask_email_login(&account.email)
        .await
        .json()
        .await
        .unwrap();
    let unknown = app.ask_email_login("nobody@example.com").await;
    assert_eq!(unknown.status().as_u16(), 202);
    assert_eq!(unknown.json::<Value>().await.unwrap(), known);
    let code = json!({ "email": "nobody@example.com", "code": "123456" });
    assert_error(app.email_login(code).await, 400, "token_invalid").await;
    // Refused and audited like a wrong code for an account (the same write either way).
    let admin = app.admin().await;
    let events = app.get_json("/admin/events", &admin.access_token).await;
    let refused = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "login_failed" && e["details"]["reason"] == "unknown_email");
    assert!(refused, "{events}");

    // At most `max_mails` per address and window; more requests are answered alike.
    for _ in 0..3 {
        assert_eq!(
            app.ask_email_login(&account.email).await.status().as_u16(),
            202
        );
    }
    sink.wait_for(3).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mails = sink.received();
    assert!(
        !mails.iter().any(|m| m.to.contains("nobody@")),
        "no mail to an unknown address"
    );
    let sign_ins = mails
        .iter()
        .filter(|m| m.subject.contains("sign-in"))
        .count();
    assert_eq!(sign_ins, 2, "the verification mail and two sign-in mails");
}

async fn an_email_sign_in_never_stands_in_for_a_second_factor(backend: Backend) {
    let (app, sink) = spawn_passwordless(backend, |_| {}).await;
    let account = verified_account(&app, &sink, 0).await;
    let (secret, _) = app.enrol_totp(&account.access_token).await;

    // The verification mail, the notice that two-step verification is on, the sign-in mail.
    let first = app.sign_in_by_mail(&sink, 3, &account.email).await;
    assert_eq!(first.status().as_u16(), 200);
    assert!(
        refresh_cookie(first.headers()).is_none(),
        "no session on the mail alone"
    );
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["mfaRequired"], true);
    let second = json!({ "mfaToken": body["mfaToken"], "code": crate::mfa::code(&secret, 1) });
    let claims =
        claims_of(&access_token_of(app.post_json("/auth/mfa/verify", &second).await).await);
    assert_eq!(claims["amr"], json!(["otp", "email"]));
    assert_eq!(claims["aal"], 1, "a mailbox is not a factor that makes two");
}

async fn passwordless_sign_in_is_off_by_default(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let asked = app.ask_email_login("someone@example.com").await;
    assert_error(asked, 404, "feature_disabled").await;
    let verify = app.email_login(json!({ "token": "x" })).await;
    assert_error(verify, 404, "feature_disabled").await;
}

async fn an_address_changes_only_when_the_new_one_confirms(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let account = app.account().await;
    let other_device = app.login_tokens(&account.email).await;

    let asked = app
        .request_email_change(
            &account.access_token,
            json!({ "newEmail": "New.Address@example.org" }),
        )
        .await;
    assert_eq!(asked.status().as_u16(), 202);
    let confirm = mail_to(&sink, 3, "New.Address@example.org", "new address").await;
    let notice = mail_to(&sink, 3, &account.email, "change of your address").await;
    assert!(notice.text.contains("New.Address@example.org"));
    // Nothing has changed yet.
    app.assert_login_works(&account.email, PASSWORD).await;

    let confirmed = app
        .confirm_email_change(&confirm.token(), Some(&account.access_token))
        .await;
    assert_eq!(confirmed.status().as_u16(), 200);
    let body: Value = confirmed.json().await.unwrap();
    assert!(body["revokedSessions"].as_u64().unwrap() >= 1);
    let me = app.get_json("/me", &account.access_token).await;
    assert_eq!(
        me["email"], "New.Address@example.org",
        "the confirming session stays"
    );
    assert_eq!(me["emailVerified"], true);
    app.assert_access_refused(&other_device.0).await;
    app.assert_login_refused(&account.email, PASSWORD).await;
    app.assert_login_works("new.address@example.org", PASSWORD)
        .await;
    let changed = mail_to(&sink, 4, &account.email, "address was changed").await;
    assert!(changed.text.contains("New.Address@example.org"));
    let again = app.confirm_email_change(&confirm.token(), None).await;
    assert_error(again, 400, "token_invalid").await;
    let kinds = app.event_kinds(&account.access_token).await;
    assert!(
        kinds.contains(&"email_change_requested".to_string()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"email_changed".to_string()), "{kinds:?}");
}

async fn a_taken_address_gives_no_signal(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let (asker, holder): (Account, Account) = (app.account().await, app.account().await);
    let free = app
        .request_email_change(
            &asker.access_token,
            json!({ "newEmail": "free@example.org" }),
        )
        .await;
    let taken = app
        .request_email_change(&asker.access_token, json!({ "newEmail": holder.email }))
        .await;
    assert_eq!(free.status().as_u16(), taken.status().as_u16());
    assert_eq!(
        free.json::<Value>().await.unwrap(),
        taken.json::<Value>().await.unwrap()
    );
    let mails = sink.wait_for(6).await;
    let to_holder: Vec<&ReceivedMail> = mails
        .iter()
        .filter(|m| m.to.contains(&holder.email))
        .collect();
    assert!(
        to_holder.iter().any(|m| m.subject.contains("tried")),
        "the holder is told"
    );
    assert!(
        !to_holder.iter().any(|m| m.subject.contains("new address")),
        "and gets no link to use"
    );
}

async fn an_address_change_needs_the_password_or_a_recent_sign_in(backend: Backend) {
    let (app, _sink) = spawn_app_mailing_with(backend, |settings| {
        settings.auth.reauthentication_seconds = 1;
    })
    .await;
    let account = app.account().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let stale = app
        .request_email_change(
            &account.access_token,
            json!({ "newEmail": "x@example.org" }),
        )
        .await;
    assert_error(stale, 403, "reauthentication_required").await;
    let wrong = app
        .request_email_change(
            &account.access_token,
            json!({ "newEmail": "x@example.org", "password": "not the password" }),
        )
        .await;
    let body = assert_error(wrong, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "password");
    let right = app
        .request_email_change(
            &account.access_token,
            json!({ "newEmail": "x@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(right.status().as_u16(), 202);
    let same = app
        .request_email_change(
            &account.access_token,
            json!({ "newEmail": account.email.to_uppercase(), "password": PASSWORD }),
        )
        .await;
    assert_error(same, 400, "validation_failed").await;
}

/// An attacker with a session and the password asks to move the address to their own; the owner
/// notices (the old address is told) and recovers the account. Whatever ends the asking session
/// ends the change: its link opens nothing afterwards.
async fn a_pending_address_change_ends_with_the_session_that_asked(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let owner = app.account().await;
    for (attempt, recovery) in ["password change", "sign-out everywhere", "password reset"]
        .iter()
        .enumerate()
    {
        let (intruder, _) = app.login_tokens(&owner.email).await;
        let asked = app
            .request_email_change(
                &intruder,
                json!({ "newEmail": "intruder@example.org", "password": PASSWORD }),
            )
            .await;
        assert_eq!(asked.status().as_u16(), 202, "{recovery}");
        let link = sink
            .nth_mail_to(attempt + 1, "intruder@example.org", "new address")
            .await;
        let owner_token = app.login_tokens(&owner.email).await.0;
        let recovered = match *recovery {
            "password change" => {
                let changed = app
                    .change_password(&owner_token, PASSWORD, NEW_PASSWORD)
                    .await;
                assert_eq!(changed.status().as_u16(), 200);
                // Back to the password the other helpers expect.
                let back = app
                    .change_password(&owner_token, NEW_PASSWORD, PASSWORD)
                    .await;
                back.status().as_u16()
            }
            "password reset" => {
                app.forgot_password(&owner.email).await;
                let mail = sink.nth_mail_to(1, &owner.email, "Reset").await;
                // To the password the other helpers expect: a reset checks no old one.
                let reset = app.reset_password(&mail.token(), PASSWORD).await;
                reset.status().as_u16()
            }
            _ => app
                .post_bearer("/auth/logout-all", &owner_token)
                .await
                .status()
                .as_u16(),
        };
        assert_eq!(recovered, 200, "{recovery}");
        let confirmed = app.confirm_email_change(&link.token(), None).await;
        assert_error(confirmed, 400, "token_invalid").await;
        app.assert_login_works(&owner.email, PASSWORD).await;
        app.assert_login_refused("intruder@example.org", PASSWORD)
            .await;
    }
}

/// Reset and sign-in links already mailed to the old address stop working once the address has
/// moved on: losing the old mailbox is the usual reason to move.
async fn an_address_change_retires_the_links_in_the_old_mailbox(backend: Backend) {
    let (app, sink) = spawn_passwordless(backend, |_| {}).await;
    let account = verified_account(&app, &sink, 0).await;
    let reset = app.mailed_reset_token(&sink, &account.email, 1).await;
    app.ask_email_login(&account.email).await;
    let sign_in = mail_to(&sink, 3, &account.email, "sign-in").await;
    let asked = app
        .request_email_change(
            &account.access_token,
            json!({ "newEmail": "moved@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(asked.status().as_u16(), 202);
    let confirm = mail_to(&sink, 5, "moved@example.org", "new address").await;
    let confirmed = app
        .confirm_email_change(&confirm.token(), Some(&account.access_token))
        .await;
    assert_eq!(confirmed.status().as_u16(), 200);

    let reset = app.reset_password(&reset, NEW_PASSWORD).await;
    assert_error(reset, 400, "token_invalid").await;
    let signed_in = app.email_login(json!({ "token": sign_in.token() })).await;
    assert_error(signed_in, 400, "token_invalid").await;
    let by_code = json!({ "email": "moved@example.org", "code": code_of(&sign_in) });
    assert_error(app.email_login(by_code).await, 400, "token_invalid").await;
    app.assert_login_works("moved@example.org", PASSWORD).await;
}

/// A sign-in mail asked for before the owner's recovery (a reset, signing out everywhere, a
/// password change) opens nothing after it, by link or by code.
async fn a_sign_in_mail_ends_with_the_owners_recovery(backend: Backend) {
    let (app, sink) = spawn_passwordless(backend, |settings| {
        settings.auth.passwordless.max_mails = 4;
    })
    .await;
    let account = verified_account(&app, &sink, 0).await;
    let email = account.email.as_str();
    let assert_refused = async |mail: &ReceivedMail| {
        let by_link = app.email_login(json!({ "token": mail.token() })).await;
        assert_error(by_link, 400, "token_invalid").await;
        let by_code = json!({ "email": email, "code": code_of(mail) });
        assert_error(app.email_login(by_code).await, 400, "token_invalid").await;
    };

    app.ask_email_login(email).await;
    let before_reset = sink.nth_mail_to(1, email, "sign-in").await;
    let reset = app.mailed_reset_token(&sink, email, 2).await;
    assert_eq!(
        app.reset_password(&reset, NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_refused(&before_reset).await;

    app.ask_email_login(email).await;
    let before_logout = sink.nth_mail_to(2, email, "sign-in").await;
    let (access, _) = app.login_tokens_with(email, NEW_PASSWORD).await;
    let ended = app.post_bearer("/auth/logout-all", &access).await;
    assert!(ended.status().is_success(), "{}", ended.status());
    assert_refused(&before_logout).await;

    app.ask_email_login(email).await;
    let before_change = sink.nth_mail_to(3, email, "sign-in").await;
    let (access, _) = app.login_tokens_with(email, NEW_PASSWORD).await;
    let changed = app.change_password(&access, NEW_PASSWORD, PASSWORD).await;
    assert_eq!(changed.status().as_u16(), 200);
    assert_refused(&before_change).await;

    // A mail asked for afterwards works.
    app.ask_email_login(email).await;
    let after = sink.nth_mail_to(4, email, "sign-in").await;
    let signed_in = app.email_login(json!({ "token": after.token() })).await;
    assert_eq!(signed_in.status().as_u16(), 200);
}

/// Where a deleted account's address may not be used again (the default), no account moves to
/// it and no invitation goes to it, as no signup takes it.
async fn a_deleted_accounts_address_is_not_taken_by_a_change_or_an_invitation(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let admin = app.admin().await;
    let gone = app.account().await;
    let deleted = app.delete_account(&gone.access_token, PASSWORD).await;
    assert_eq!(deleted.status().as_u16(), 204);
    app.assert_email_taken(&gone.email).await;

    let mover = app.account().await;
    let asked = app
        .request_email_change(
            &mover.access_token,
            json!({ "newEmail": gone.email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        asked.status().as_u16(),
        202,
        "the same answer as any address"
    );
    // The notice to the mover's own address is sent; no link goes to the old account's.
    sink.nth_mail_to(1, &mover.email, "change of your address")
        .await;
    let invited = app
        .authed(
            Method::POST,
            "/admin/invitations",
            &admin.access_token,
            Some(json!({ "email": gone.email, "role": "user" })),
        )
        .await;
    assert_error(invited, 409, "email_taken").await;
    let links: Vec<ReceivedMail> = sink
        .received()
        .into_iter()
        .filter(|m| m.to.contains(&gone.email) && m.subject.contains("new address"))
        .collect();
    assert!(links.is_empty(), "no link to the deleted account's address");
}

/// A signed-in account is no way to flood a mailbox: the notice to an address's holder, the link
/// to a free address and the notice to the asker's own address each come at most
/// `auth.link_mails_per_address` times per window; the answers stay the same.
async fn address_changes_flood_no_mailbox(backend: Backend) {
    let (app, sink) = spawn_app_mailing_with(backend, |s| {
        s.auth.link_mails_per_address = 2;
    })
    .await;
    let (asker, holder): (Account, Account) = (app.account().await, app.account().await);
    for _ in 0..4 {
        for target in [holder.email.as_str(), "stranger@example.org"] {
            let asked = app
                .request_email_change(&asker.access_token, json!({ "newEmail": target }))
                .await;
            assert_eq!(asked.status().as_u16(), 202);
        }
    }
    // Two verification mails, then two of each of the three.
    sink.wait_for(8).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mails = sink.wait_for(8).await;
    let to = |address: &str| mails.iter().filter(|m| m.to.contains(address)).count();
    assert_eq!(
        mails.len(),
        8,
        "{:?}",
        mails
            .iter()
            .map(|m| (&m.to, &m.subject))
            .collect::<Vec<_>>()
    );
    assert_eq!(to(&holder.email), 1 + 2);
    assert_eq!(to("stranger@example.org"), 2);
    assert_eq!(to(&asker.email), 1 + 2);
}

/// Asking again for another address (a typo corrected) retires the link sent for the first,
/// whatever the new request sends (a link, or only a notice to the address's holder).
async fn a_newer_address_change_retires_the_earlier_link(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let (asker, holder): (Account, Account) = (app.account().await, app.account().await);
    let change = |to: &'static str| json!({ "newEmail": to });
    app.request_email_change(&asker.access_token, change("typo@example.org"))
        .await;
    let typo = mail_to(&sink, 4, "typo@example.org", "new address").await;
    app.request_email_change(&asker.access_token, change("right@example.org"))
        .await;
    let right = mail_to(&sink, 6, "right@example.org", "new address").await;
    let stale = app.confirm_email_change(&typo.token(), None).await;
    assert_error(stale, 400, "token_invalid").await;

    app.request_email_change(&asker.access_token, json!({ "newEmail": holder.email }))
        .await;
    sink.wait_for(8).await;
    let stale = app.confirm_email_change(&right.token(), None).await;
    assert_error(stale, 400, "token_invalid").await;
    let me = app.get_json("/me", &asker.access_token).await;
    assert_eq!(me["email"], asker.email.as_str());
}

crate::backend_tests!(
    address_changes_flood_no_mailbox,
    a_newer_address_change_retires_the_earlier_link,
    a_pending_address_change_ends_with_the_session_that_asked,
    an_address_change_retires_the_links_in_the_old_mailbox,
    a_deleted_accounts_address_is_not_taken_by_a_change_or_an_invitation,
    a_sign_in_mail_ends_with_the_owners_recovery,
    a_mailed_link_or_code_signs_in_once,
    a_sign_in_mail_takes_an_unverified_account_from_whoever_signed_it_up,
    a_code_allows_a_few_submissions_and_a_new_mail_voids_the_old_one,
    unknown_addresses_get_the_same_answer_and_nothing_else,
    an_email_sign_in_never_stands_in_for_a_second_factor,
    passwordless_sign_in_is_off_by_default,
    an_address_changes_only_when_the_new_one_confirms,
    a_taken_address_gives_no_signal,
    an_address_change_needs_the_password_or_a_recent_sign_in,
);
