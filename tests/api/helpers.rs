//! The test harness: each test gets its own authd on a random port, its own PostgreSQL database
//! (dropped afterwards), its own Redis key prefix (deleted afterwards) and its own secrets.

use std::path::Path;

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

/// Where the tests find PostgreSQL and Redis; override for another machine.
fn admin_database_url() -> String {
    std::env::var("AUTHD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis_url() -> String {
    std::env::var("AUTHD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub hasher: HasherPool,
    database_name: String,
    database_url: String,
}

/// The settings a test starts from: config/test.toml with fresh secrets.
pub fn test_settings() -> Settings {
    let vars = vec![
        ("JWT_SECRET".to_string(), random_secret()),
        ("AUTHD__TOKENS__REFRESH_SECRET".to_string(), random_secret()),
        ("REDIS_URL".to_string(), redis_url()),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings =
        config::load_from(&dir, Environment::Test, &vars).expect("test settings load");
    // Most tests make more than five credential requests; the rate-limit tests set their own.
    settings.rate_limit.auth_max = 1000;
    settings.rate_limit.general_max = 10_000;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings();
    let database_name = format!("authd_test_{}", Uuid::new_v4().simple());
    let admin_url = admin_database_url();
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    let database_url = format!("{base}/{database_name}");
    settings.database.url = config::ConnectionUrl::new(database_url.clone());
    settings.database.create_if_missing = true;
    settings.database.auto_migrate = true;
    settings.database.pool_size = 8;
    settings.cache.key_prefix = format!("authd:test:{}:", Uuid::new_v4().simple());
    customize(&mut settings);
    settings
        .validate()
        .expect("customised test settings are valid");

    let application = Application::build(settings.clone())
        .await
        .expect("the app starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let hasher = application.hasher();
    actix_web::rt::spawn(application.run_until_stopped());

    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        settings,
        hasher,
        database_name,
        database_url,
    }
}

impl Drop for TestApp {
    /// Drops the database and deletes the Redis keys, on a thread of its own because `Drop` cannot
    /// await.
    fn drop(&mut self) {
        let database_name = self.database_name.clone();
        let prefix = self.settings.cache.key_prefix.clone();
        let admin_url = admin_database_url();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!(
                            "DROP DATABASE IF EXISTS \"{database_name}\" WITH (FORCE)"
                        ))
                        .await;
                }
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
            });
        });
        let _ = cleanup.join();
    }
}

/// The value of the `refresh_token` cookie a response sets, if it sets one with a value.
pub fn refresh_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("refresh_token="))
        .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        .filter(|value| !value.is_empty())
}

/// The whole `Set-Cookie` line for `refresh_token`.
pub fn refresh_cookie_line(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("refresh_token="))
        .map(str::to_string)
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

/// A signed-up user and what signup gave them.
pub struct Account {
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: Uuid,
}

impl TestApp {
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

    /// Logs in and returns (access token, refresh token).
    pub async fn login_tokens(&self, email: &str) -> (String, String) {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status().as_u16(), 200);
        let refresh = refresh_cookie(response.headers()).expect("a refresh cookie");
        let body: Value = response.json().await.unwrap();
        (body["accessToken"].as_str().unwrap().to_string(), refresh)
    }

    /// POST /auth/refresh with the token in the cookie, as a browser does.
    pub async fn refresh_with_cookie(&self, refresh_token: &str) -> Response {
        self.client
            .post(self.url("/auth/refresh"))
            .header("Cookie", format!("refresh_token={refresh_token}"))
            .send()
            .await
            .expect("request")
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.client
            .get(self.url("/me"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request")
    }

    /// A connection to this test's own database, to check what the API left behind.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .expect("test database");
        actix_web::rt::spawn(connection);
        client
    }
}
