//! The test harness: each test gets its own authd on a random port, its own PostgreSQL database
//! (dropped afterwards), its own Redis key prefix (deleted afterwards) and its own secrets.

use std::path::{Path, PathBuf};

use actix_web::dev::ServerHandle;
use authd::actors::hasher::HasherPool;
use authd::app::Application;
use authd::config::{self, Environment, Settings};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::Response;
use serde_json::{json, Value};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";
/// A second strong password, for changes and resets.
pub const NEW_PASSWORD: &str = "lantern orchard quietly 42";

/// The two backend pairs every HTTP test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL store and Redis cache: production.
    PostgresRedis,
    /// SQLite file and in-process cache: the embedded default.
    SqliteInProcess,
}

/// Generates one `#[actix_web::test]` per backend for each named `async fn(Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod postgres_redis {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::PostgresRedis).await
                }
            )*
        }
        mod sqlite_in_process {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::SqliteInProcess).await
                }
            )*
        }
    };
}

/// A database of one test's own, removed when the test ends.
#[derive(Debug, Clone)]
pub enum TestDatabase {
    Postgres { name: String, url: String },
    Sqlite { path: PathBuf },
}

impl TestDatabase {
    /// A fresh, empty database for `backend` (PostgreSQL: created by authd at start).
    pub fn new(backend: Backend) -> Self {
        match backend {
            Backend::PostgresRedis => {
                let name = format!("authd_test_{}", Uuid::new_v4().simple());
                let admin_url = admin_database_url();
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .unwrap_or(&admin_url);
                TestDatabase::Postgres {
                    url: format!("{base}/{name}"),
                    name,
                }
            }
            Backend::SqliteInProcess => TestDatabase::Sqlite {
                path: std::env::temp_dir()
                    .join(format!("authd-test-{}.db", Uuid::new_v4().simple())),
            },
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDatabase::Postgres { url, .. } => url.clone(),
            TestDatabase::Sqlite { path } => format!("sqlite://{}", path.display()),
        }
    }

    /// Removes the database; runs on a thread of its own because `Drop` cannot await.
    pub fn remove(&self) {
        match self {
            TestDatabase::Postgres { name, .. } => {
                let name = name.clone();
                let admin_url = admin_database_url();
                let _ = std::thread::spawn(move || {
                    block_on_fresh_runtime(async move {
                        if let Ok((client, connection)) =
                            tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
                        {
                            tokio::spawn(connection);
                            let _ = client
                                .batch_execute(&format!(
                                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                                ))
                                .await;
                        }
                    })
                })
                .join();
            }
            TestDatabase::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }
}

fn block_on_fresh_runtime(future: impl std::future::Future<Output = ()>) {
    if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        runtime.block_on(future);
    }
}

/// Deletes every Redis key under `prefix`.
pub fn remove_redis_keys(prefix: &str) {
    let prefix = prefix.to_string();
    let _ = std::thread::spawn(move || {
        block_on_fresh_runtime(async move {
            if let Ok(client) = redis::Client::open(redis_url()) {
                if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("{prefix}*"))
                        .query_async(&mut connection)
                        .await
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        let _: Result<(), _> = redis::cmd("DEL")
                            .arg(keys)
                            .query_async(&mut connection)
                            .await;
                    }
                }
            }
        })
    })
    .join();
}

/// Where the tests find PostgreSQL and Redis; override for another machine.
fn admin_database_url() -> String {
    std::env::var("AUTHD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("AUTHD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub hasher: HasherPool,
    pub backend: Backend,
    database: TestDatabase,
    server: ServerHandle,
}

/// The settings a test starts from: config/test.toml with fresh secrets, on `backend`.
pub fn test_settings(backend: Backend, database: &TestDatabase) -> Settings {
    let mut vars = vec![
        ("JWT_SECRET".to_string(), random_secret()),
        ("AUTHD__TOKENS__REFRESH_SECRET".to_string(), random_secret()),
        ("DATABASE_URL".to_string(), database.url()),
    ];
    if backend == Backend::PostgresRedis {
        vars.push(("REDIS_URL".to_string(), redis_url()));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings =
        config::load_from(&dir, Environment::Test, &vars).expect("test settings load");
    settings.database.create_if_missing = true;
    settings.database.auto_migrate = true;
    settings.database.pool_size = 8;
    settings.cache.key_prefix = format!("authd:test:{}:", Uuid::new_v4().simple());
    // Mail goes to files of this test's own unless a test points it at an SMTP sink.
    settings.mail.file_dir = std::env::temp_dir()
        .join(format!("authd-mail-{}", Uuid::new_v4().simple()))
        .display()
        .to_string();
    settings.mail.poll_interval_ms = 200;
    // Most tests make more than five credential requests; the rate-limit tests set their own.
    settings.rate_limit.auth_max = 1000;
    settings.rate_limit.general_max = 10_000;
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(backend, TestDatabase::new(backend), customize).await
}

/// Starts the app on a database the test prepared (removed when the app is dropped).
pub async fn spawn_app_on(
    backend: Backend,
    database: TestDatabase,
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(backend, &database);
    customize(&mut settings);
    settings
        .validate()
        .expect("customised test settings are valid");
    let (address, hasher, server) = start(&settings).await;
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        settings,
        hasher,
        backend,
        database,
        server,
    }
}

async fn start(settings: &Settings) -> (String, HasherPool, ServerHandle) {
    let application = Application::build(settings.clone())
        .await
        .expect("the app starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let hasher = application.hasher();
    let server = application.handle();
    actix_web::rt::spawn(application.run_until_stopped());
    (address, hasher, server)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The database first: removing it takes long enough for a mail the app was still
        // writing to land, so the mail folder goes last and stays gone.
        self.database.remove();
        let _ = std::fs::remove_dir_all(&self.settings.mail.file_dir);
        if self.backend == Backend::PostgresRedis {
            remove_redis_keys(&self.settings.cache.key_prefix);
        }
    }
}

/// The whole `Set-Cookie` line that sets the cookie `name`.
pub fn cookie_line(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| {
            v.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('='))
        })
        .map(str::to_string)
}

/// The value a response sets the cookie `name` to, if it sets one with a value.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let line = cookie_line(headers, name)?;
    let value = line[name.len() + 1..].split(';').next().unwrap_or("");
    Some(value.to_string()).filter(|value| !value.is_empty())
}

/// The value of the `refresh_token` cookie a response sets, if it sets one with a value.
pub fn refresh_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, "refresh_token")
}

/// The whole `Set-Cookie` line for `refresh_token`.
pub fn refresh_cookie_line(headers: &HeaderMap) -> Option<String> {
    cookie_line(headers, "refresh_token")
}

/// A response to a `"tokenTransport": "body"` request: `status`, and the refresh token in the
/// body is the one the cookie sets.
pub async fn assert_refresh_token_in_body(response: Response, status: u16) {
    assert_eq!(response.status().as_u16(), status, "status");
    let cookie = refresh_cookie(response.headers()).expect("a refresh cookie");
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(
        body["refreshToken"],
        cookie.as_str(),
        "refreshToken in {body}"
    );
}

/// Checks the contract's error shape and returns the body.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("X-Request-Id on every response")
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["code"], code, "code in {body}");
    assert_eq!(body["statusCode"], status, "statusCode in {body}");
    assert_eq!(
        body["requestId"],
        request_id.as_str(),
        "requestId in {body}"
    );
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "error in {body}"
    );
    let timestamp = body["timestamp"].as_str().expect("timestamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "{timestamp}"
    );
    body
}

/// The `accessToken` of a JSON response.
pub async fn access_token_of(response: Response) -> String {
    let body: Value = response.json().await.expect("a JSON body");
    body["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("an access token in {body}"))
        .to_string()
}

/// A signed-up user and what signup gave them.
pub struct Account {
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: Uuid,
}

impl TestApp {
    /// The URL of this test's own database (`postgres://...` or `sqlite://PATH`).
    pub fn database_url(&self) -> String {
        self.database.url()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.address, self.settings.base_path(), path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn signup(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/signup",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Signs up a fresh user and returns their tokens.
    pub async fn account(&self) -> Account {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let response = self.signup(&email, PASSWORD).await;
        assert_eq!(response.status().as_u16(), 201);
        let refresh_token = refresh_cookie(response.headers()).expect("a refresh cookie");
        let body: Value = response.json().await.unwrap();
        Account {
            email,
            access_token: body["accessToken"].as_str().unwrap().to_string(),
            refresh_token,
            user_id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        }
    }

    /// Signs up a fresh user and makes them an admin (as `authd user create --admin` would).
    pub async fn admin(&self) -> Account {
        let admin = self.account().await;
        self.execute(&format!(
            "UPDATE users SET role = 'admin' WHERE id = '{}'",
            admin.user_id
        ))
        .await;
        admin
    }

    /// A request with `token` as the bearer and `body` as JSON.
    pub async fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    /// The access token no longer works: 401 `token_invalid`.
    pub async fn assert_access_refused(&self, access_token: &str) {
        assert_error(self.me(access_token).await, 401, "token_invalid").await;
    }

    /// The refresh token no longer works: 401 `token_invalid`.
    pub async fn assert_refresh_refused(&self, refresh_token: &str) {
        self.assert_refresh_refused_as(refresh_token, "token_invalid")
            .await;
    }

    /// The refresh token is refused with 401 and this `code` (reuse, expiry, ...).
    pub async fn assert_refresh_refused_as(&self, refresh_token: &str, code: &str) {
        let response = self.refresh_with_cookie(refresh_token).await;
        assert_error(response, 401, code).await;
    }

    /// This password signs in: 200.
    pub async fn assert_login_works(&self, email: &str, password: &str) {
        let response = self.login(email, password).await;
        assert_eq!(response.status().as_u16(), 200, "login of {email}");
    }

    /// The refresh token rotates: 200.
    pub async fn assert_refresh_works(&self, refresh_token: &str) {
        let response = self.refresh_with_cookie(refresh_token).await;
        assert_eq!(response.status().as_u16(), 200, "refresh");
    }

    /// This password does not sign in: 401 `invalid_credentials`, as any wrong password.
    pub async fn assert_login_refused(&self, email: &str, password: &str) {
        assert_error(
            self.login(email, password).await,
            401,
            "invalid_credentials",
        )
        .await;
    }

    /// A locked account does not sign in, and answers the same 403 `account_locked` to the right
    /// password and a wrong one (a guess is never confirmed).
    pub async fn assert_login_locked(&self, email: &str) {
        for password in [PASSWORD, "a wrong guess at it"] {
            let response = self.login(email, password).await;
            assert_error(response, 403, "account_locked").await;
        }
    }

    /// POST /auth/password/forgot: asks for a reset link mailed to `email`.
    pub async fn forgot_password(&self, email: &str) -> Response {
        self.post_json("/auth/password/forgot", &json!({ "email": email }))
            .await
    }

    /// POST /auth/password/reset with a mailed token in the body.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Response {
        let body = json!({ "token": token, "newPassword": new_password });
        self.post_json("/auth/password/reset", &body).await
    }

    /// POST /auth/tokens/validate: exchanges a mailed token for a follow-up cookie.
    pub async fn validate_token(&self, token: &str) -> Response {
        self.post_json("/auth/tokens/validate", &json!({ "token": token }))
            .await
    }

    /// POST /auth/password/reset with the follow-up token in its cookie, as the reset page does.
    pub async fn reset_password_with_cookie(
        &self,
        follow_up: &str,
        new_password: &str,
    ) -> Response {
        let cookie = format!("one_time_token={follow_up}");
        let body = json!({ "newPassword": new_password });
        self.post_with_cookie("/auth/password/reset", &cookie, Some(&body))
            .await
    }

    /// POST /auth/email/verify with a mailed token.
    pub async fn verify_email(&self, token: &str) -> Response {
        self.post_json("/auth/email/verify", &json!({ "token": token }))
            .await
    }

    /// Signing `email` up with the test password works: 201.
    pub async fn assert_signup_works(&self, email: &str) {
        let response = self.signup(email, PASSWORD).await;
        assert_eq!(response.status().as_u16(), 201, "signup of {email}");
    }

    /// A signup with `email` is refused: 409 `email_taken`, the address belongs to an account.
    pub async fn assert_email_taken(&self, email: &str) {
        let response = self.signup(email, PASSWORD).await;
        assert_error(response, 409, "email_taken").await;
    }

    /// `GET path`, anonymously.
    pub async fn fetch(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// `method path` with no credentials and no body: what the anonymous public gets.
    pub async fn anonymous(&self, method: reqwest::Method, path: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// `GET path` anonymously with these headers: for tests of what the service makes of them.
    pub async fn fetch_with_headers<V: AsRef<[u8]>>(
        &self,
        path: &str,
        headers: &[(&str, V)],
    ) -> Response {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            let value =
                reqwest::header::HeaderValue::from_bytes(value.as_ref()).expect("a header value");
            request = request.header(*name, value);
        }
        request.send().await.expect("request")
    }

    /// `POST path` with a JSON body and these headers: as a proxy passing on forwarding headers
    /// would send it.
    pub async fn post_json_with_headers<V: AsRef<str>>(
        &self,
        path: &str,
        headers: &[(&str, V)],
        body: &Value,
    ) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, value.as_ref());
        }
        request.send().await.expect("request")
    }

    /// `POST path` with raw bytes declared as JSON: for bodies `json!` cannot write.
    pub async fn post_raw_json(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.authed(reqwest::Method::GET, path, token, None).await
    }

    /// `PATCH path` with a bearer token and a JSON body: profile edits and admin changes.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.authed(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    /// An admin locks a user (which ends their sessions): 200.
    pub async fn lock_user(&self, admin_token: &str, user_id: Uuid) {
        let path = format!("/admin/users/{user_id}");
        let response = self
            .patch(&path, admin_token, json!({ "locked": true }))
            .await;
        assert_eq!(response.status().as_u16(), 200, "lock of {user_id}");
    }

    /// `DELETE path` with a bearer token and no body.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.authed(reqwest::Method::DELETE, path, token, None)
            .await
    }

    /// `DELETE /me` with the password that confirms it.
    pub async fn delete_account(&self, token: &str, password: &str) -> Response {
        let body = serde_json::json!({ "password": password });
        self.authed(reqwest::Method::DELETE, "/me", token, Some(body))
            .await
    }

    /// `POST /auth/password/change` from the current to a new password.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Response {
        let body = serde_json::json!({ "currentPassword": current, "newPassword": new });
        self.authed(
            reqwest::Method::POST,
            "/auth/password/change",
            token,
            Some(body),
        )
        .await
    }

    /// `GET path` with a bearer token, expecting 200: the JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = self.get(path, token).await;
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.json().await.expect("a JSON body")
    }

    /// `GET path` with a bearer token: the status alone.
    /// The kinds of the caller's own audit events, newest first.
    pub async fn event_kinds(&self, token: &str) -> Vec<String> {
        strings_of(&self.get_json("/me/events", token).await["events"], "kind")
    }

    pub async fn get_status(&self, path: &str, token: &str) -> u16 {
        self.get(path, token).await.status().as_u16()
    }

    /// `GET path` with a bearer token is refused with `status` and `code`: the error body.
    pub async fn assert_get_error(
        &self,
        path: &str,
        token: &str,
        status: u16,
        code: &str,
    ) -> Value {
        assert_error(self.get(path, token).await, status, code).await
    }

    /// The session of `token` is held to enrolment (`auth.mfa.required`): `GET /auth/sessions`
    /// answers 403 `mfa_enrollment_required`.
    pub async fn assert_held_to_enrolment(&self, token: &str) {
        self.assert_get_error("/auth/sessions", token, 403, "mfa_enrollment_required")
            .await;
    }

    /// `POST /auth/reauthenticate` with a proof (password, code, passkey answer) as `body`.
    pub async fn reauthenticate(&self, token: &str, body: Value) -> Response {
        self.authed(
            reqwest::Method::POST,
            "/auth/reauthenticate",
            token,
            Some(body),
        )
        .await
    }

    /// A step-up with `body` that works (200): the session's fresh access token.
    pub async fn step_up(&self, token: &str, body: Value) -> String {
        let response = self.reauthenticate(token, body).await;
        assert_eq!(response.status().as_u16(), 200, "step-up");
        access_token_of(response).await
    }

    /// Logs in and returns (access token, refresh token).
    pub async fn login_tokens(&self, email: &str) -> (String, String) {
        self.login_tokens_with(email, PASSWORD).await
    }

    /// Logs in with `password`: the access token and the refresh cookie's token.
    pub async fn login_tokens_with(&self, email: &str, password: &str) -> (String, String) {
        let response = self.login(email, password).await;
        assert_eq!(response.status().as_u16(), 200);
        let refresh = refresh_cookie(response.headers()).expect("a refresh cookie");
        let body: Value = response.json().await.unwrap();
        (body["accessToken"].as_str().unwrap().to_string(), refresh)
    }

    /// POST /auth/refresh with the token in the cookie, as a browser does.
    pub async fn refresh_with_cookie(&self, refresh_token: &str) -> Response {
        let cookie = format!("refresh_token={refresh_token}");
        self.post_with_cookie("/auth/refresh", &cookie, None).await
    }

    /// POST /auth/logout with the refresh token in the cookie only, as a browser does.
    pub async fn logout_with_cookie(&self, refresh_token: &str) -> Response {
        let cookie = format!("refresh_token={refresh_token}");
        self.post_with_cookie("/auth/logout", &cookie, None).await
    }

    /// `POST path` with a `Cookie` header (`name=value`) and, optionally, a JSON body.
    pub async fn post_with_cookie(
        &self,
        path: &str,
        cookie: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self.client.post(self.url(path)).header("Cookie", cookie);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }

    /// `POST path` with a bearer token and no body.
    pub async fn post_bearer(&self, path: &str, token: &str) -> Response {
        self.authed(reqwest::Method::POST, path, token, None).await
    }

    /// `GET /me` with a bearer token: the quickest check that an access token works.
    pub async fn me(&self, access_token: &str) -> Response {
        self.get("/me", access_token).await
    }

    /// Stops this app gracefully and starts a new one on the same settings and database.
    pub async fn restart(&mut self) {
        self.server.stop(true).await;
        let (address, hasher, server) = start(&self.settings).await;
        self.address = address;
        self.hasher = hasher;
        self.server = server;
    }

    /// Runs SQL that both backends understand, directly on this test's database.
    pub async fn execute(&self, sql: &str) {
        match &self.database {
            TestDatabase::Postgres { url, .. } => {
                postgres_client(url)
                    .await
                    .batch_execute(sql)
                    .await
                    .expect("SQL runs");
            }
            TestDatabase::Sqlite { path } => {
                rusqlite::Connection::open(path)
                    .and_then(|c| c.execute_batch(sql))
                    .expect("SQL runs");
            }
        }
    }

    /// Every row `sql` returns, each column read as `T` (on both backends, so write portable SQL:
    /// `CAST(... AS BIGINT)` for integers).
    pub async fn query_values<T>(&self, sql: &str) -> Vec<Vec<T>>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a> + rusqlite::types::FromSql,
    {
        match &self.database {
            TestDatabase::Postgres { url, .. } => postgres_client(url)
                .await
                .query(sql, &[])
                .await
                .expect("query runs")
                .iter()
                .map(|row| (0..row.len()).map(|i| row.get::<_, T>(i)).collect())
                .collect(),
            TestDatabase::Sqlite { path } => {
                let connection = rusqlite::Connection::open(path).expect("open");
                let mut statement = connection.prepare(sql).expect("prepare");
                let columns = statement.column_count();
                statement
                    .query_map([], |row| (0..columns).map(|i| row.get::<_, T>(i)).collect())
                    .expect("query runs")
                    .collect::<Result<_, _>>()
                    .expect("rows")
            }
        }
    }

    pub async fn query_integers(&self, sql: &str) -> Vec<Vec<i64>> {
        self.query_values(sql).await
    }

    /// The first column, read as `T`, of every row `sql` returns.
    pub async fn query_column<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a> + rusqlite::types::FromSql,
    {
        self.query_values(sql)
            .await
            .into_iter()
            .map(|mut row| row.remove(0))
            .collect()
    }

    /// The first column, as optional text, of every row `sql` returns.
    pub async fn query_texts(&self, sql: &str) -> Vec<Option<String>> {
        self.query_column(sql).await
    }

    /// The first column, as bytes, of every row `sql` returns.
    pub async fn query_blobs(&self, sql: &str) -> Vec<Vec<u8>> {
        self.query_column(sql).await
    }
}

pub async fn postgres_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("test database");
    actix_web::rt::spawn(connection);
    client
}

/// The `authd` binary as an operator runs its CLI: the test environment, a SQLite file in `dir`
/// and fixed secrets, so that every run of one test sees the same database and keys.
pub fn authd_cli(dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
    command
        .env("AUTHD_ENV", "test")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("authd.db").display()),
        )
        .env("JWT_SECRET", "a-cli-test-jwt-secret-0123456789abcdef")
        .env(
            "AUTHD__TOKENS__REFRESH_SECRET",
            "a-cli-test-refresh-secret-0123456789abc",
        );
    command
}

/// Runs `command` with `input` on its standard input: how it exited and what it printed.
pub fn output_with_stdin(command: &mut std::process::Command, input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    child
        .stdin
        .take()
        .expect("its standard input")
        .write_all(input.as_bytes())
        .expect("the input is written");
    child.wait_with_output().expect("the command ends")
}

/// The header of a JWT, decoded (the signature is not checked).
pub fn header_of(token: &str) -> Value {
    jwt_part(token, 0)
}

/// The claims of a JWT, decoded (the signature is not checked).
pub fn claims_of(token: &str) -> Value {
    jwt_part(token, 1)
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// The `field` of every object in the array `items`, as strings.
pub fn strings_of(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| item[field].as_str().expect("a string").to_string())
        .collect()
}

/// A stand-in for a third party (an identity provider, a webhook receiver, a breach API) served
/// by actix on 127.0.0.1 inside the test process; stopped when dropped.
pub struct LocalServer {
    pub port: u16,
    handle: ServerHandle,
}

impl LocalServer {
    /// Serves `routes` on `listener` with one worker.
    pub fn serve(
        listener: std::net::TcpListener,
        routes: impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
    ) -> LocalServer {
        let port = listener.local_addr().expect("a bound port").port();
        let server =
            actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
                .workers(1)
                .listen(listener)
                .expect("listens")
                .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        LocalServer { port, handle }
    }

    /// Stops it now (an endpoint going down in the middle of a test).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}
