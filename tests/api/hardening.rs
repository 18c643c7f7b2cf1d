//! Brute-force defence, trusted proxies, password policy and legacy hashes, over HTTP.

use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, authd_cli, spawn_app, spawn_app_with, Backend, TestApp, NEW_PASSWORD, PASSWORD,
};
use crate::processes::TempDir;

fn lockout_after_three(s: &mut authd::config::Settings) {
    s.auth.lockout.threshold = 3;
    s.auth.lockout.base_delay_seconds = 1;
    s.auth.lockout.max_delay_seconds = 900;
}

async fn fail_three_times(app: &TestApp, email: &str) {
    for _ in 0..3 {
        app.assert_login_refused(email, "not the password").await;
    }
}

async fn repeated_failures_make_an_account_wait_and_success_resets_it(backend: Backend) {
    let app = spawn_app_with(backend, lockout_after_three).await;
    let account = app.account().await;
    fail_three_times(&app, &account.email).await;

    // Even the right password waits now: the answer comes before any hashing.
    let verifications = app.hasher.stats().verifications;
    let response = app.login(&account.email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.headers()["retry-after"], "1");
    // Its RateLimit headers describe the account's wait, not the per-IP allowance left.
    assert_eq!(
        response.headers()["ratelimit"],
        "limit=1, remaining=0, reset=1"
    );
    assert_eq!(response.headers()["ratelimit-policy"], "1;w=1");
    let body = assert_error(response, 429, "rate_limited").await;
    assert!(
        body["error"].as_str().unwrap().contains("failed attempts"),
        "{body}"
    );
    assert_eq!(
        app.hasher.stats().verifications,
        verifications,
        "no hashing while throttled"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.assert_login_works(&account.email, PASSWORD).await;
    // The success cleared the count: two more failures do not throttle.
    for _ in 0..2 {
        app.assert_login_refused(&account.email, "nope nope").await;
    }
    app.assert_login_works(&account.email, PASSWORD).await;
}

async fn unknown_emails_are_throttled_exactly_like_real_ones(backend: Backend) {
    let app = spawn_app_with(backend, lockout_after_three).await;
    let account = app.account().await;
    fail_three_times(&app, &account.email).await;
    fail_three_times(&app, "ghost@example.com").await;
    let real = assert_error(
        app.login(&account.email, "x-password").await,
        429,
        "rate_limited",
    )
    .await;
    let ghost = assert_error(
        app.login("ghost@example.com", "x-password").await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(real["error"], ghost["error"]);
}

async fn a_forged_forwarded_for_does_not_escape_the_per_ip_limit(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.rate_limit.auth_max = 2).await;
    for (i, forged) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        let body = json!({ "email": format!("f{i}@example.com"), "password": "whatever it is" });
        let forwarded = [("X-Forwarded-For", *forged)];
        let response = app
            .post_json_with_headers("/auth/login", &forwarded, &body)
            .await;
        let expected = if i < 2 { 401 } else { 429 };
        assert_eq!(response.status().as_u16(), expected, "request {i}");
    }
}

async fn a_trusted_proxy_passes_the_client_address_on(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limit.auth_max = 2;
        s.http.trusted_proxies = vec!["127.0.0.0/8".into(), "::1/128".into()];
    })
    .await;
    for (i, client) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        let body = json!({ "email": format!("p{i}@example.com"), "password": PASSWORD });
        let forwarded = [("X-Forwarded-For", format!("6.6.6.6, {client}"))];
        let response = app
            .post_json_with_headers("/auth/signup", &forwarded, &body)
            .await;
        assert_eq!(
            response.status().as_u16(),
            201,
            "each client has its own allowance"
        );
    }
    let ips = app.query_texts("SELECT ip FROM sessions ORDER BY ip").await;
    assert_eq!(
        ips,
        ["198.51.100.1", "198.51.100.2", "198.51.100.3"].map(|ip| Some(ip.to_string()))
    );
}

async fn weak_and_personal_passwords_are_refused_with_the_reason(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for password in [
        "password123",
        "grace.hopper",
        "gracehopper99",
        "authdauthd1",
    ] {
        let response = app
            .post_json(
                "/auth/signup",
                &json!({ "email": "grace.hopper@example.com", "name": "Grace Hopper", "password": password }),
            )
            .await;
        let body = assert_error(response, 400, "validation_failed").await;
        assert_eq!(body["details"][0]["field"], "password", "{password}");
        let message = body["details"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("is too easy to guess"),
            "{password}: {message}"
        );
    }
}

fn argon2_hash(password: &str, m: u32, t: u32, p: u32) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(m, t, p, None).unwrap(),
    )
    .hash_password(password.as_bytes(), &salt)
    .unwrap()
    .to_string()
}

/// Polls until the background re-hash has stored a hash of today's parameters.
async fn stored_hash_after_rehash(app: &TestApp, email: &str) -> String {
    let current = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        app.settings.hasher.argon2_memory_kib,
        app.settings.hasher.argon2_iterations,
        app.settings.hasher.argon2_parallelism
    );
    for _ in 0..50 {
        let hashes = app
            .query_texts(&format!(
                "SELECT password_hash FROM users WHERE email = '{email}'"
            ))
            .await;
        let hash = hashes[0].clone().unwrap();
        if hash.starts_with(&current) {
            return hash;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{email} was not re-hashed to {current}");
}

async fn imported_users_log_in_with_their_old_passwords_and_are_rehashed(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let bcrypt_hash = bcrypt::hash("legacy bcrypt pass", 4).unwrap();
    let old_argon2 = argon2_hash("legacy argon2 pass", 256, 2, 1);
    let file = format!(
        "{}\n\n{}\n{}\n{}\n",
        json!({ "email": "Bcrypt@Example.com", "name": "B", "passwordHash": bcrypt_hash, "role": "admin", "emailVerified": true, "createdAt": "2021-05-06T07:08:09Z" }),
        json!({ "email": "argon@example.com", "passwordHash": old_argon2 }),
        json!({ "email": "broken@example.com", "passwordHash": "md5:abc" }),
        "{not json",
    );
    let (store, _) = authd::app::open_store(&app.settings, false).await.unwrap();
    let report = authd::flows::import::import_users(store.as_ref(), file.as_bytes(), false)
        .await
        .unwrap();
    assert_eq!((report.imported, report.already_present), (2, 0));
    let failed_lines: Vec<usize> = report.failures.iter().map(|(line, _)| *line).collect();
    assert_eq!(failed_lines, [4, 5]);

    // Idempotent: the same file again changes nothing.
    let again = authd::flows::import::import_users(store.as_ref(), file.as_bytes(), false)
        .await
        .unwrap();
    assert_eq!((again.imported, again.already_present), (0, 2));

    let response = app.login("bcrypt@example.com", "legacy bcrypt pass").await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(body["user"]["emailVerified"], true);
    assert_eq!(body["user"]["createdAt"], "2021-05-06T07:08:09.000000Z");
    let rehashed = stored_hash_after_rehash(&app, "Bcrypt@Example.com").await;
    assert!(!rehashed.starts_with("$2"));
    // The new hash works, and the wrong password still does not.
    app.assert_login_works("bcrypt@example.com", "legacy bcrypt pass")
        .await;
    assert_eq!(
        app.login("bcrypt@example.com", "another pass")
            .await
            .status()
            .as_u16(),
        401
    );

    app.assert_login_works("argon@example.com", "legacy argon2 pass")
        .await;
    stored_hash_after_rehash(&app, "argon@example.com").await;
}

/// A deleted account's address stays closed to the command line as it is to a signup: importing
/// a file again does not bring the account back, and `user create` refuses it; the setting that
/// reopens it to signups reopens it here too.
async fn a_deleted_accounts_address_stays_closed_to_the_command_line(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let response = app.delete_account(&account.access_token, PASSWORD).await;
    assert_eq!(response.status().as_u16(), 204);
    let hash = bcrypt::hash("legacy bcrypt pass", 4).unwrap();
    let line = json!({ "email": account.email, "passwordHash": hash }).to_string();
    let (store, _) = authd::app::open_store(&app.settings, false).await.unwrap();
    let import = |allow_reuse| {
        authd::flows::import::import_users(store.as_ref(), line.as_bytes(), allow_reuse)
    };
    let refused = import(false).await.unwrap();
    assert_eq!(refused.imported, 0);
    assert_eq!(refused.failures.len(), 1);
    assert!(
        refused.failures[0].1.contains("deleted account"),
        "{:?}",
        refused.failures
    );

    let hasher = authd::actors::hasher::HasherPool::start(&app.settings.hasher).unwrap();
    let rules = authd::flows::deps::PasswordRules {
        min_score: app.settings.auth.password_min_score,
        app_name: app.settings.auth.app_name.clone(),
        breaches: authd::breach::BreachChecker::new(&app.settings.auth.breached_passwords).unwrap(),
    };
    let request = |allow_email_reuse_after_delete| authd::flows::admin::ProvisionRequest {
        email: &account.email,
        name: None,
        role: authd::domain::user::Role::User,
        password: NEW_PASSWORD,
        allow_email_reuse_after_delete,
    };
    let created =
        authd::flows::admin::provision_user(store.as_ref(), &hasher, &rules, request(false)).await;
    match created {
        Err(authd::error::AppError::Validation(problems)) => {
            assert_eq!(problems[0].field, "email");
            assert!(problems[0].message.contains("deleted account"));
        }
        other => panic!("expected a refusal, got {:?}", other.map(|user| user.id)),
    }
    assert_eq!(
        app.login(&account.email, NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        401
    );

    // Reopened by the setting: the import brings a new account in.
    let reopened = import(true).await.unwrap();
    assert_eq!((reopened.imported, reopened.failures.len()), (1, 0));
    app.assert_login_works(&account.email, "legacy bcrypt pass")
        .await;
}

/// Tokens and accounts stay out of caches; no answer is sniffed into another type or framed.
async fn answers_are_neither_cached_nor_sniffed_nor_framed(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = format!("cache-{}@example.com", uuid::Uuid::new_v4().simple());
    let signup = app.signup(&email, PASSWORD).await;
    let login = app.login(&email, PASSWORD).await;
    let missing = app.fetch("/no/such/route").await;
    for response in [&signup, &login, &missing] {
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store", "{}", response.url());
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
    }
    // The public keys say how long they may be cached.
    let jwks = app.fetch("/.well-known/jwks.json").await;
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=60");
}

crate::backend_tests!(
    answers_are_neither_cached_nor_sniffed_nor_framed,
    repeated_failures_make_an_account_wait_and_success_resets_it,
    unknown_emails_are_throttled_exactly_like_real_ones,
    a_forged_forwarded_for_does_not_escape_the_per_ip_limit,
    a_trusted_proxy_passes_the_client_address_on,
    weak_and_personal_passwords_are_refused_with_the_reason,
    imported_users_log_in_with_their_old_passwords_and_are_rehashed,
    a_deleted_accounts_address_stays_closed_to_the_command_line,
);

#[test]
fn the_import_command_reports_each_bad_line_and_exits_1() {
    let dir = TempDir::new("import");
    let file = dir.0.join("users.jsonl");
    let hash = bcrypt::hash("legacy bcrypt pass", 4).unwrap();
    // A byte-order mark before the first line, as some editors write; a hash that would take
    // 48 GiB to verify.
    let costly =
        "$argon2id$v=19$m=50331648,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    std::fs::write(
        &file,
        format!(
            "\u{feff}{}\n{}\n{}\n",
            json!({ "email": "cli@example.com", "passwordHash": hash }),
            json!({ "email": "bad", "passwordHash": hash }),
            json!({ "email": "costly@example.com", "passwordHash": costly })
        ),
    )
    .unwrap();
    let run = || {
        authd_cli(&dir.0)
            .args(["users", "import"])
            .arg(&file)
            .env_remove("REDIS_URL")
            .env_remove("AUTHD__CACHE__URL")
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("imported 1, already present 0, failed 2"),
        "{stdout}"
    );
    assert!(
        stderr.contains("line 2: email must be a valid email address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 3: passwordHash asks more than authd verifies"),
        "{stderr}"
    );
    let second = run();
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("imported 0, already present 1, failed 2")
    );
    // A directory is no file: one line and exit 2 (reading it line by line never ended).
    let directory = authd_cli(&dir.0)
        .args(["users", "import"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(directory.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&directory.stderr).contains("is a directory"));
}

/// `authd hash calibrate` times real hashes and prints settings it found within the target,
/// their login ceiling, and a config block that loads.
#[test]
fn hash_calibration_prints_settings_within_the_target() {
    let dir = TempDir::new("calibrate");
    let output = authd_cli(&dir.0)
        .args([
            "hash",
            "calibrate",
            "--target-ms",
            "40",
            "--min-memory-kib",
            "1024",
            "--max-memory-kib",
            "65536",
            "--samples",
            "1",
        ])
        .output()
        .expect("authd runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("  m=1024 KiB t=1"),
        "the first trial is the floor: {text}"
    );
    let chosen = text
        .lines()
        .find(|line| line.starts_with("chosen: "))
        .expect("a chosen line");
    let millis: f64 = chosen
        .rsplit(": ")
        .next()
        .and_then(|t| t.strip_suffix(" ms a hash"))
        .and_then(|t| t.parse().ok())
        .expect("the time of the chosen setting");
    assert!(millis > 0.0);
    assert!(
        text.contains("login ceiling with hasher.workers = "),
        "{text}"
    );
    let memory: u32 = text
        .lines()
        .find_map(|line| line.strip_prefix("argon2_memory_kib = "))
        .and_then(|m| m.parse().ok())
        .expect("a memory setting");
    assert!((1024..=65536).contains(&memory));
    assert!(text.contains("AUTHD__HASHER__ARGON2_ITERATIONS="));
}
