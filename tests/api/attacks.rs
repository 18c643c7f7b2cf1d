//! What an outside review tried against authd, as an attacker would, and what authd answers now.
//! Each test failed before its fix; each runs on both backends unless its mechanism is one
//! backend's alone (then it says why).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, cookie_value, remove_redis_keys, spawn_app_with, Backend, TestApp, NEW_PASSWORD,
    PASSWORD,
};
use crate::smtp::{spawn_app_mailing, spawn_app_mailing_with};

fn proxied_by_loopback(s: &mut authd::config::Settings) {
    s.http.trusted_proxies = vec!["127.0.0.0/8".into(), "::1/128".into()];
}

/// The status of a failing login sent through a proxy with these forwarding headers.
async fn login_as(app: &TestApp, path: &str, forwarded: &[(&str, String)]) -> u16 {
    let body = json!({ "email": "nobody@example.com", "password": "not the password" });
    app.post_json_with_headers(path, forwarded, &body)
        .await
        .status()
        .as_u16()
}

/// An app behind a trusted loopback proxy with an allowance of two credential requests.
async fn spawn_proxied_allowing_two(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        proxied_by_loopback(s);
        s.rate_limit.auth_max = 2;
    })
    .await
}

/// Failing logins, one from each of three clients as the proxy names them, are answered 401,
/// 401 and 429: the three share one bucket of two.
async fn assert_one_bucket_of_two(app: &TestApp, clients: &[Vec<(&str, String)>; 3]) {
    for (i, forwarded) in clients.iter().enumerate() {
        let expected = if i < 2 { 401 } else { 429 };
        let status = login_as(app, "/auth/login", forwarded).await;
        assert_eq!(status, expected, "login {i} from {forwarded:?}");
    }
}

/// Signs `email` up through a proxy with these forwarding headers: the addresses sessions record.
async fn signup_through(
    app: &TestApp,
    email: &str,
    forwarded: &[(&str, &str)],
) -> Vec<Option<String>> {
    let body = json!({ "email": email, "password": PASSWORD });
    let response = app
        .post_json_with_headers("/auth/signup", forwarded, &body)
        .await;
    assert_eq!(response.status().as_u16(), 201, "signup of {email}");
    app.query_texts("SELECT ip FROM sessions").await
}

/// Per-IP limits are keyed on the route the router will pick, not on the raw path: a
/// percent-encoded spelling of `/auth/login` reaches login and shares its allowance.
async fn a_percent_encoded_path_shares_the_limit_of_the_route_it_reaches(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.rate_limit.auth_max = 2).await;
    assert_eq!(login_as(&app, "/auth/login", &[]).await, 401);
    assert_eq!(
        login_as(&app, "/auth/%6Cogin", &[]).await,
        401,
        "it is login"
    );
    for spelling in [
        "/auth/login",
        "/auth/%6Cogin",
        "/auth/log%69n",
        "/%61uth/login",
    ] {
        assert_eq!(login_as(&app, spelling, &[]).await, 429, "{spelling}");
    }
    // A route of its own still has its own allowance.
    let signup = app.signup("fresh@example.com", PASSWORD).await;
    assert_eq!(signup.status().as_u16(), 201);
}

/// Behind a trusted proxy authd reads the one header that proxy is configured to set: a client's
/// own `Forwarded` (passed through by a proxy that rewrites only `X-Forwarded-For`) picks nothing.
async fn a_client_forwarded_header_does_not_pick_the_bucket_behind_the_proxy(backend: Backend) {
    let app = spawn_proxied_allowing_two(backend).await;
    let clients = ["198.51.100.1", "198.51.100.2", "198.51.100.3"].map(|forged| {
        vec![
            ("Forwarded", format!("for={forged}")),
            ("X-Forwarded-For", "203.0.113.7".to_string()),
        ]
    });
    assert_one_bucket_of_two(&app, &clients).await;
    // And the address recorded is the proxy's word, not the client's.
    let forwarded = [
        ("Forwarded", "for=6.6.6.6"),
        ("X-Forwarded-For", "203.0.113.8"),
    ];
    let ips = signup_through(&app, "proxied@example.com", &forwarded).await;
    assert_eq!(ips, [Some("203.0.113.8".to_string())]);

    // Configured for `Forwarded`, authd reads that one and ignores X-Forwarded-For.
    let app = spawn_app_with(backend, |s| {
        proxied_by_loopback(s);
        s.http.forwarded_header = authd::config::ForwardedHeader::Forwarded;
    })
    .await;
    let forwarded = [
        ("Forwarded", "for=\"[2001:db8::7]:443\""),
        ("X-Forwarded-For", "6.6.6.6"),
    ];
    let ips = signup_through(&app, "rfc7239@example.com", &forwarded).await;
    assert_eq!(ips, [Some("2001:db8::7".to_string())]);
}

/// IPv6 clients are bucketed per /64: one host cannot walk its own prefix for fresh allowances.
async fn ipv6_clients_of_one_64_share_a_bucket(backend: Backend) {
    let app = spawn_proxied_allowing_two(backend).await;
    let clients = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"]
        .map(|host| vec![("X-Forwarded-For", host.to_string())]);
    assert_one_bucket_of_two(&app, &clients).await;
    let neighbour = [("X-Forwarded-For", "2001:db8:1:3::1".to_string())];
    assert_eq!(login_as(&app, "/auth/login", &neighbour).await, 401);

    let app = spawn_app_with(backend, |s| {
        proxied_by_loopback(s);
        s.rate_limit.auth_max = 1;
        s.rate_limit.ipv6_prefix_length = 128;
    })
    .await;
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2"] {
        let headers = [("X-Forwarded-For", host.to_string())];
        assert_eq!(login_as(&app, "/auth/login", &headers).await, 401, "{host}");
    }
}

/// Every way of ending access (logout, lock, deletion, password change) holds after a restart,
/// and does not depend on anything a cache remembers.
async fn revocations_hold_across_a_restart_and_a_lost_cache(backend: Backend) {
    let mut app = spawn_app_with(backend, |_| {}).await;
    let admin = app.admin().await;

    let logged_out = app.account().await;
    let response = app
        .post_bearer("/auth/logout", &logged_out.access_token)
        .await;
    assert_eq!(response.status().as_u16(), 200);

    let locked = app.account().await;
    app.lock_user(&admin.access_token, locked.user_id).await;

    let deleted = app.account().await;
    let response = app.delete_account(&deleted.access_token, PASSWORD).await;
    assert_eq!(response.status().as_u16(), 204);

    let changed = app.account().await;
    let (other_device, _) = app.login_tokens(&changed.email).await;
    let response = app
        .change_password(&changed.access_token, PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(response.status().as_u16(), 200);

    let revoked = [
        ("logged out", logged_out.access_token.clone()),
        ("locked", locked.access_token.clone()),
        ("deleted", deleted.access_token.clone()),
        ("other device after a password change", other_device),
    ];
    for (_, token) in &revoked {
        app.assert_access_refused(token).await;
    }

    app.restart().await;
    if backend == Backend::PostgresRedis {
        // As if Redis had evicted or lost every key.
        remove_redis_keys(&app.settings.cache.key_prefix);
    }
    for (what, token) in &revoked {
        let response = app.me(token).await;
        assert_eq!(response.status().as_u16(), 401, "{what} after a restart");
    }
    // The session that changed the password lives on, and so does an untouched one.
    assert_eq!(app.me(&changed.access_token).await.status().as_u16(), 200);
    assert_eq!(app.me(&admin.access_token).await.status().as_u16(), 200);
}

fn lockout_after_three(s: &mut authd::config::Settings) {
    s.auth.lockout.threshold = 3;
    s.auth.lockout.base_delay_seconds = 60;
    // Room for every concurrent login in the pool, so none is shed with 503 instead.
    s.hasher.queue_capacity = 16;
}

/// Ten wrong passwords sent at once: the attempts are reserved before any hashing, so only the
/// threshold's worth is verified and the rest wait.
async fn concurrent_guesses_are_throttled_before_any_is_verified(backend: Backend) {
    let app = spawn_app_with(backend, lockout_after_three).await;
    let account = app.account().await;
    let before = app.hasher.stats().verifications;
    let answers = futures_util::future::join_all((0..10).map(|i| {
        app.login(
            &account.email,
            if i % 2 == 0 { "guess one" } else { "guess two" },
        )
    }))
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    assert_eq!(
        app.hasher.stats().verifications - before,
        3,
        "three verified"
    );
}

/// A stolen access token is no password oracle: the current-password check of a password change
/// or an account deletion shares the login allowance and is audited.
async fn current_password_checks_are_throttled_and_audited_like_logins(backend: Backend) {
    let app = spawn_app_with(backend, lockout_after_three).await;
    let account = app.account().await;
    let change =
        |current: &'static str| app.change_password(&account.access_token, current, NEW_PASSWORD);
    for _ in 0..2 {
        assert_error(change("guess one").await, 400, "validation_failed").await;
    }
    let delete = app.delete_account(&account.access_token, "guess two").await;
    assert_error(delete, 400, "validation_failed").await;
    // The allowance is spent: even the right password waits, and so does a login.
    assert_error(change(PASSWORD).await, 429, "rate_limited").await;
    assert_error(
        app.login(&account.email, PASSWORD).await,
        429,
        "rate_limited",
    )
    .await;

    let failures = app
        .query_texts("SELECT details FROM auth_events WHERE kind = 'reauthentication_failed'")
        .await;
    let mut actions: Vec<String> = failures
        .iter()
        .map(|d| {
            serde_json::from_str::<Value>(d.as_deref().unwrap()).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        ["account_deletion", "password_change", "password_change"]
    );
}

/// The link a reset or invitation mail carries is exchanged once; its follow-up cookie opens the
/// next step but is not exchanged for a fresh one, so a link cannot be kept alive forever.
async fn a_follow_up_token_is_not_exchanged_again(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let account = app.account().await;
    sink.wait_for(1).await;
    let token = app.mailed_reset_token(&sink, &account.email, 1).await;
    let validated = app.validate_token(&token).await;
    assert_eq!(validated.status().as_u16(), 200);
    let follow_up =
        cookie_value(validated.headers(), "one_time_token").expect("a follow-up cookie");
    let again = app.validate_token(&follow_up).await;
    assert_error(again, 400, "token_invalid").await;
    // It still does what it is for.
    let reset = app
        .reset_password_with_cookie(&follow_up, NEW_PASSWORD)
        .await;
    assert_eq!(reset.status().as_u16(), 200);
}

/// A reset with one link, or a password change, retires every other reset link of the account.
async fn a_new_password_retires_every_outstanding_reset_link(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let account = app.account().await;
    sink.wait_for(1).await;
    // A newer reset mail retires the older link; a reset with the newest retires the rest.
    let first = app.mailed_reset_token(&sink, &account.email, 1).await;
    let second = app.mailed_reset_token(&sink, &account.email, 2).await;
    assert_ne!(first, second);
    let stale = app.reset_password(&first, NEW_PASSWORD).await;
    assert_error(stale, 400, "token_invalid").await;
    let reset = app.reset_password(&second, NEW_PASSWORD).await;
    assert_eq!(reset.status().as_u16(), 200);
    let used = app
        .reset_password(&second, "another fine passphrase 7")
        .await;
    assert_error(used, 400, "token_invalid").await;

    // A link mailed before a password change opens nothing after it.
    app.forgot_password(&account.email).await;
    let mails = sink.wait_for(5).await;
    let link = mails
        .iter()
        .rev()
        .find(|m| m.subject.contains("Reset your password"))
        .unwrap()
        .token();
    let (access, _) = {
        let response = app.login(&account.email, NEW_PASSWORD).await;
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        (body["accessToken"].as_str().unwrap().to_string(), ())
    };
    let change = app.change_password(&access, NEW_PASSWORD, PASSWORD).await;
    assert_eq!(change.status().as_u16(), 200);
    let stale = app.reset_password(&link, "another fine passphrase 7").await;
    assert_error(stale, 400, "token_invalid").await;
}

/// An invitation grants what its inviter may grant when it is used: an admin since demoted,
/// locked or deleted has invited nobody.
async fn an_invitation_dies_with_its_inviters_rights(backend: Backend) {
    let (app, sink) = spawn_app_mailing(backend).await;
    let boss = app.admin().await;
    let mut expected_mails = 1;
    for (i, fate) in ["demoted", "locked", "deleted"].iter().enumerate() {
        let inviter = app.admin().await;
        let invitee = format!("invitee-{i}@example.com");
        let response = app
            .authed(
                reqwest::Method::POST,
                "/admin/invitations",
                &inviter.access_token,
                Some(json!({ "email": invitee, "role": "admin" })),
            )
            .await;
        assert_eq!(response.status().as_u16(), 201);
        expected_mails += 2;
        let mails = sink.wait_for(expected_mails).await;
        let token = mails
            .iter()
            .find(|m| m.to == invitee)
            .expect("the invitation")
            .token();
        let path = format!("/admin/users/{}", inviter.user_id);
        let response = match *fate {
            "demoted" => {
                app.patch(&path, &boss.access_token, json!({ "role": "user" }))
                    .await
            }
            "locked" => {
                app.patch(&path, &boss.access_token, json!({ "locked": true }))
                    .await
            }
            _ => app.delete(&path, &boss.access_token).await,
        };
        assert!(response.status().is_success(), "{fate}");
        let signup = app
            .post_json(
                "/auth/signup",
                &json!({ "email": invitee, "password": PASSWORD, "invitationToken": token }),
            )
            .await;
        assert_error(signup, 400, "token_invalid").await;
    }
    // The boss's own invitation still works.
    let response = app
        .authed(
            reqwest::Method::POST,
            "/admin/invitations",
            &boss.access_token,
            Some(json!({ "email": "welcome@example.com", "role": "admin" })),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let mails = sink.wait_for(expected_mails + 1).await;
    let token = mails
        .iter()
        .find(|m| m.to == "welcome@example.com")
        .unwrap()
        .token();
    let signup = app
        .post_json(
            "/auth/signup",
            &json!({ "email": "welcome@example.com", "password": PASSWORD, "invitationToken": token }),
        )
        .await;
    assert_eq!(signup.status().as_u16(), 201);
    let body: Value = signup.json().await.unwrap();
    assert_eq!(body["user"]["role"], "admin");
}

/// Holds the store's write lock on one-time tokens (a PostgreSQL table lock; SQLite's single
/// writer) until dropped, from a connection of the test's own.
enum WriteLock {
    Postgres(tokio_postgres::Client),
    Sqlite(rusqlite::Connection),
}

impl WriteLock {
    async fn take(app: &TestApp, table: &str) -> Self {
        match app.database_url().strip_prefix("sqlite://") {
            Some(path) => {
                let connection = rusqlite::Connection::open(path).unwrap();
                connection.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteLock::Sqlite(connection)
            }
            None => {
                let client = crate::helpers::postgres_client(&app.database_url()).await;
                client
                    .batch_execute(&format!(
                        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
                    ))
                    .await
                    .unwrap();
                WriteLock::Postgres(client)
            }
        }
    }

    async fn release(self) {
        match self {
            WriteLock::Postgres(client) => client.batch_execute("ROLLBACK").await.unwrap(),
            WriteLock::Sqlite(connection) => connection.execute_batch("ROLLBACK").unwrap(),
        }
    }
}

/// "Send me a mail" answers before any work for the address is done: while the store cannot
/// write a token, a known address is still answered at once, and its mail follows once it can.
async fn forgot_and_resend_answer_before_the_work_for_a_known_address(backend: Backend) {
    let (app, sink) = spawn_app_mailing_with(backend, |s| {
        // Lots of room, so only the lock can hold the write up.
        s.database.acquire_timeout_seconds = 30;
    })
    .await;
    let account = app.account().await;
    sink.wait_for(1).await;
    let lock = WriteLock::take(&app, "one_time_tokens").await;
    for path in ["/auth/password/forgot", "/auth/email/resend"] {
        let answer = tokio::time::timeout(
            Duration::from_secs(4),
            app.post_json(path, &json!({ "email": account.email })),
        )
        .await
        .unwrap_or_else(|_| panic!("{path} waited for the store: the work came before the answer"));
        assert_eq!(answer.status().as_u16(), 202, "{path}");
    }
    lock.release().await;
    let mails = sink.wait_for(3).await;
    assert!(mails
        .iter()
        .any(|m| m.subject.contains("Reset your password")));
}

/// With verification required, a signup for a taken address answers a stand-in that matches a
/// real new account field by field, the shape of its timestamp included.
async fn a_hidden_signup_is_indistinguishable_field_by_field(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.auth.require_email_verification = true).await;
    let fresh = app.signup("fresh@example.com", PASSWORD).await;
    assert_eq!(fresh.status().as_u16(), 201);
    let fresh: Value = fresh.json().await.unwrap();
    for attempt in 0..20 {
        let taken = app.signup("fresh@example.com", PASSWORD).await;
        assert_eq!(taken.status().as_u16(), 201);
        let taken: Value = taken.json().await.unwrap();
        assert_eq!(shape(&fresh), shape(&taken), "attempt {attempt}");
        assert_eq!(fresh["message"], taken["message"]);
        for field in ["email", "name", "role", "emailVerified"] {
            assert_eq!(fresh["user"][field], taken["user"][field], "{field}");
        }
        let stamp = taken["user"]["createdAt"].as_str().unwrap();
        assert_eq!(stamp.len(), "2026-12-03T08:30:08.123456Z".len(), "{stamp}");
        assert_eq!(
            fresh["user"]["createdAt"].as_str().unwrap().len(),
            stamp.len()
        );
        assert_ne!(fresh["user"]["id"], taken["user"]["id"]);
    }
}

/// Every key of a JSON value, with the kind of value and (for strings) the length it holds.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), shape(v))).collect(),
        Value::String(text) if text.len() == 36 && uuid::Uuid::parse_str(text).is_ok() => {
            json!("uuid")
        }
        Value::String(text) => json!(format!("string of {}", text.len())),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
        Value::Array(items) => items.iter().map(shape).collect(),
    }
}

/// A right password for a locked account is recorded, and so is a logout by cookie only, with
/// its user.
async fn a_locked_login_and_a_cookie_logout_are_audited_with_their_user(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let admin = app.admin().await;
    let account = app.account().await;
    let response = app.logout_with_cookie(&account.refresh_token).await;
    assert_eq!(response.status().as_u16(), 200);
    app.lock_user(&admin.access_token, account.user_id).await;
    app.assert_login_locked(&account.email).await;

    let events = app
        .query_texts(&format!(
            "SELECT kind || ' ' || details FROM auth_events WHERE user_id = '{}' ORDER BY created_at",
            account.user_id
        ))
        .await;
    let events: Vec<String> = events.into_iter().flatten().collect();
    assert!(events.iter().any(|e| e == "logout {}"), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e == r#"login_failed {"reason":"account_locked"}"#),
        "{events:?}"
    );
}

/// Where signup hides which addresses have accounts, a locked account answers any password with
/// the 401 of a wrong one: neither its existence nor the right password shows.
async fn a_locked_account_hidden_by_signup_answers_like_a_wrong_password(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.auth.require_email_verification = true).await;
    let signup = app.signup("locked@example.com", PASSWORD).await;
    assert_eq!(signup.status().as_u16(), 201);
    let body: Value = signup.json().await.unwrap();
    let id = body["user"]["id"].as_str().unwrap().to_string();
    // Verified, so that only the lock stands between the right password and a session.
    let lock = "UPDATE users SET locked = TRUE, email_verified = TRUE WHERE id =";
    app.execute(&format!("{lock} '{id}'")).await;
    for password in [PASSWORD, "a wrong guess at it"] {
        app.assert_login_refused("locked@example.com", password)
            .await;
    }
    app.execute(&format!(
        "UPDATE users SET locked = FALSE WHERE id = '{id}'"
    ))
    .await;
    app.assert_login_works("locked@example.com", PASSWORD).await;
}

/// Unicode spellings of one mailbox open one account: fullwidth letters, NFD accents, case, and an
/// internationalised domain in Unicode or punycode. (Local parts are ASCII: the address check
/// follows RFC 5321, not SMTPUTF8.)
async fn unicode_spellings_of_a_taken_address_are_taken(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    app.assert_signup_works("x@example.com").await;
    let fullwidth = "x@\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}.com";
    app.assert_email_taken(fullwidth).await;
    app.assert_email_taken("\u{FF38}@EXAMPLE.com").await;
    app.assert_login_works(fullwidth, PASSWORD).await;

    app.assert_signup_works("remy@b\u{00FC}cher.example").await;
    app.assert_email_taken("remy@bu\u{0308}cher.example").await;
    app.assert_email_taken("remy@xn--bcher-kva.example").await;
    let accounts = app
        .query_integers("SELECT CAST(count(*) AS BIGINT) FROM users")
        .await;
    assert_eq!(accounts[0][0], 2);
}

/// Out-of-range cursors and a NUL in a search are the client's mistake: 400, never 500.
async fn odd_cursors_and_search_text_are_400(backend: Backend) {
    use base64::Engine;
    let app = spawn_app_with(backend, |_| {}).await;
    let admin = app.admin().await;
    let encode = |text: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let far = encode(format!(
        "{}.{}",
        9_000_000_000_000_000_000i64,
        uuid::Uuid::nil()
    ));
    // 31,700 years before 1970: chrono reads it, PostgreSQL's timestamptz cannot hold it.
    let early = encode(format!(
        "{}.{}",
        -1_000_000_000_000_000_000i64,
        uuid::Uuid::nil()
    ));
    for path in ["/me/events", "/admin/users", "/admin/events"] {
        for cursor in [&far, &early] {
            let response = app
                .get(&format!("{path}?cursor={cursor}"), &admin.access_token)
                .await;
            let body = assert_error(response, 400, "validation_failed").await;
            assert_eq!(body["details"][0]["field"], "cursor", "{path}");
        }
    }
    for q in ["%00", "a%00b", "%1B"] {
        let response = app
            .get(&format!("/admin/users?q={q}"), &admin.access_token)
            .await;
        let body = assert_error(response, 400, "validation_failed").await;
        assert_eq!(body["details"][0]["field"], "q");
    }
}

/// The contract's password policy (NIST SP 800-63B: length and a blocklist): a random
/// eight-letter password passes by default; common ones do not.
async fn a_random_eight_letter_password_is_accepted_and_common_ones_are_not(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let response = app.signup("random@example.com", "qhvzkrpw").await;
    assert_eq!(response.status().as_u16(), 201);
    for (i, common) in ["password", "12345678", "iloveyou", "letmein123"]
        .iter()
        .enumerate()
    {
        let response = app.signup(&format!("common{i}@example.com"), common).await;
        let body = assert_error(response, 400, "validation_failed").await;
        assert_eq!(body["details"][0]["field"], "password", "{common}");
    }
}

/// A field of the wrong JSON type is reported under its own name, on every body.
async fn a_mistyped_field_is_named_in_the_details(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let account = app.account().await;
    for (path, body, field) in [
        (
            "/auth/signup",
            json!({ "email": 42, "password": PASSWORD }),
            "email",
        ),
        (
            "/auth/login",
            json!({ "email": "a@example.com", "password": [] }),
            "password",
        ),
        (
            "/auth/refresh",
            json!({ "tokenTransport": "carrier pigeon" }),
            "tokenTransport",
        ),
        (
            "/auth/password/forgot",
            json!({ "email": { "x": 1 } }),
            "email",
        ),
    ] {
        let body = assert_error(app.post_json(path, &body).await, 400, "validation_failed").await;
        assert_eq!(body["details"][0]["field"], field, "{path}: {body}");
    }
    let response = app
        .patch("/me", &account.access_token, json!({ "name": true }))
        .await;
    let body = assert_error(response, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "name");
    // Malformed JSON has no field to blame.
    let response = app.post_raw_json("/auth/login", "{\"email\": ").await;
    let body = assert_error(response, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "body");
}

/// A login the hasher pool sheds costs no database work: with the users table locked, logins
/// that hold the pool's places wait on it, and the next one is refused at once. PostgreSQL only:
/// it is the backend whose lookup the review measured, and a table lock that blocks readers is
/// PostgreSQL's (SQLite's WAL readers are never blocked).
#[actix_web::test]
async fn a_shed_login_answers_503_without_touching_the_store() {
    let app = spawn_app_with(Backend::PostgresRedis, |s| {
        s.hasher.workers = 1;
        s.hasher.queue_capacity = 1;
        s.database.acquire_timeout_seconds = 30;
    })
    .await;
    let account = app.account().await;
    let lock = WriteLock::take(&app, "users").await;
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/auth/login");
            let email = account.email.clone();
            actix_web::rt::spawn(async move {
                client
                    .post(url)
                    .json(&json!({ "email": email, "password": PASSWORD }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // Both places are taken once both logins wait on the lock.
    let started = std::time::Instant::now();
    while app.hasher.stats().in_flight < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the logins never queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = tokio::time::timeout(Duration::from_secs(4), app.login(&account.email, PASSWORD))
        .await
        .expect("a shed login waited for the store");
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_error(shed, 503, "overloaded").await;
    lock.release().await;
    for login in waiting {
        assert_eq!(login.await.unwrap(), 200);
    }
}

crate::backend_tests!(
    a_locked_account_hidden_by_signup_answers_like_a_wrong_password,
    a_percent_encoded_path_shares_the_limit_of_the_route_it_reaches,
    a_client_forwarded_header_does_not_pick_the_bucket_behind_the_proxy,
    ipv6_clients_of_one_64_share_a_bucket,
    revocations_hold_across_a_restart_and_a_lost_cache,
    concurrent_guesses_are_throttled_before_any_is_verified,
    current_password_checks_are_throttled_and_audited_like_logins,
    a_follow_up_token_is_not_exchanged_again,
    a_new_password_retires_every_outstanding_reset_link,
    an_invitation_dies_with_its_inviters_rights,
    forgot_and_resend_answer_before_the_work_for_a_known_address,
    a_hidden_signup_is_indistinguishable_field_by_field,
    a_locked_login_and_a_cookie_logout_are_audited_with_their_user,
    unicode_spellings_of_a_taken_address_are_taken,
    odd_cursors_and_search_text_are_400,
    a_random_eight_letter_password_is_accepted_and_common_ones_are_not,
    a_mistyped_field_is_named_in_the_details,
);
