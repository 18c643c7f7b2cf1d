//! Layered configuration: `config/default.toml`, then `config/$AUTHD_ENV.toml`, then the seed apps'
//! plain variables (`DATABASE_URL`, `JWT_SECRET`, ...), then `AUTHD__SECTION__KEY` variables.
//!
//! Every section denies unknown fields so that a typo stops the start instead of being ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::domain::jwt_algorithm::JwtAlgorithm;

/// Secrets shipped in `config/development.toml` and the README. They are fine for a laptop and
/// refused everywhere else.
pub const EXAMPLE_SECRETS: &[&str] = &[
    "dev-only-jwt-secret-change-me-0123456789abcdef",
    "dev-only-refresh-secret-change-me-0123456789abcdef",
    "dev-only-key-encryption-key-change-me-0123456789",
];

/// Minimum length of any signing or HMAC secret, in bytes (RFC 7518 §3.2: HS256 keys of at least
/// the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "test" => Ok(Environment::Test),
            "production" | "prod" => Ok(Environment::Production),
            other => Err(ConfigError::Invalid {
                setting: "AUTHD_ENV".into(),
                reason: format!(
                    "unknown environment {other:?} (expected development, test or production)"
                ),
            }),
        }
    }
}

/// A secret from config. `Debug` and `Serialize` never show its value.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(Option<SecretString>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Some(SecretString::from(value.into())))
    }

    pub fn expose(&self) -> &str {
        self.0.as_ref().map(|s| s.expose_secret()).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() {
            "\"\""
        } else {
            "\"[redacted]\""
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.is_empty() { "" } else { "[redacted]" })
    }
}

/// A connection URL that may carry a password: shown with the password replaced.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn new(value: impl Into<String>) -> Self {
        ConnectionUrl(value.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some(scheme_end) = url.find("://") else {
            return url.clone();
        };
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => format!(
                        "{}{}:***{}",
                        &url[..scheme_end + 3],
                        &userinfo[..colon],
                        &url[scheme_end + 3 + at..]
                    ),
                    None => url.clone(),
                }
            }
            None => url.clone(),
        }
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl Serialize for ConnectionUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Filled from `AUTHD_ENV` (or `NODE_ENV`), never from the files.
    #[serde(skip_deserializing, default = "default_env")]
    pub environment: Environment,
    pub app: AppSettings,
    pub server: ServerSettings,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub cache: CacheSettings,
    pub tokens: TokenSettings,
    pub hasher: HasherSettings,
    pub rate_limit: RateLimitSettings,
    pub auth: AuthSettings,
    pub mail: MailSettings,
    pub janitor: JanitorSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
}

fn default_env() -> Environment {
    Environment::Development
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Public URL of the frontend; the CORS origin when `http.cors_allowed_origins` is empty, and
    /// the base of the links in emails.
    pub frontend_url: String,
    /// Frontend pages the emailed links open, with `?token=...` appended.
    pub verify_email_path: String,
    pub reset_password_path: String,
    pub invitation_path: String,
}

impl AppSettings {
    /// `frontend_url + path + ?token=...`.
    pub fn link(&self, path: &str, token: &str) -> String {
        format!(
            "{}{}?token={}",
            self.frontend_url.trim_end_matches('/'),
            path,
            token
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test sink.
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// `Name <address>` the mails come from.
    pub from: String,
    /// Empty: no SMTP; mails are written to `file_dir` as .eml files (and logged, without body).
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_tls: SmtpTls,
    pub smtp_username: String,
    pub smtp_password: Secret,
    pub file_dir: String,
    /// How often the mailer looks for due mail (it is also woken when mail is queued).
    pub poll_interval_ms: u64,
    pub batch_size: u32,
    /// How long a claimed mail is reserved for the node sending it.
    pub lease_seconds: u64,
    /// Attempts before a mail is marked dead.
    pub max_attempts: u32,
    pub backoff_base_seconds: u64,
    pub backoff_max_seconds: u64,
    pub send_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    pub shutdown_timeout_seconds: u64,
    /// An idle kept-alive connection is closed after this; 0 turns keep-alive off.
    pub keep_alive_seconds: u64,
    /// A request head (request line and headers) must arrive within this: the first one on a
    /// connection is answered 408, a later one ends the connection.
    pub client_request_timeout_ms: u64,
    /// A request body must have arrived within this once it is read; else 408 `request_timeout`.
    pub client_body_timeout_ms: u64,
    /// After a closing answer, how long the client gets to close its side.
    pub client_disconnect_timeout_ms: u64,
    /// Open connections per HTTP worker; past it new ones wait in the listen queue.
    pub max_connections: usize,
}

impl ServerSettings {
    pub fn keep_alive(&self) -> Option<std::time::Duration> {
        (self.keep_alive_seconds > 0)
            .then(|| std::time::Duration::from_secs(self.keep_alive_seconds))
    }
    pub fn client_request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.client_request_timeout_ms)
    }
    pub fn client_body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.client_body_timeout_ms)
    }
    pub fn client_disconnect_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.client_disconnect_timeout_ms)
    }
}

/// Which forwarding header carries the client address from the trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ForwardedHeader {
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=...`.
    #[serde(rename = "forwarded")]
    Forwarded,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Prefix every route is mounted under, e.g. `/api`; empty for none.
    pub base_path: String,
    pub max_body_bytes: usize,
    /// Requests whose URI and headers exceed this many bytes get 431 `headers_too_large`.
    pub max_header_bytes: usize,
    /// Origins allowed to call with credentials. Empty means `app.frontend_url` alone.
    pub cors_allowed_origins: Vec<String>,
    pub cors_max_age_seconds: usize,
    /// Peers (CIDRs or addresses) whose forwarding header is believed. Empty: the socket's peer
    /// address is the client, always.
    pub trusted_proxies: Vec<String>,
    /// The one header the trusted proxies set; the other is ignored, so a client cannot slip an
    /// address past a proxy that only rewrites its own header.
    pub forwarded_header: ForwardedHeader,
    /// Serve the OpenAPI document at `/openapi.json` and Swagger UI at `/docs/`.
    pub docs_enabled: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:pass@host:port/db`, `sqlite://path/to/file.db`, `sqlite::memory:`, or empty
    /// for the embedded default (SQLite at `sqlite_path`).
    pub url: ConnectionUrl,
    /// The SQLite file used when `url` is empty; created with its directory on first start.
    pub sqlite_path: String,
    pub pool_size: usize,
    pub connect_timeout_seconds: u64,
    /// How long a request waits for a free pooled connection before answering 503.
    pub acquire_timeout_seconds: u64,
    /// Apply pending migrations at start.
    pub auto_migrate: bool,
    /// Create the database named in `url` when it does not exist (handy on a laptop).
    pub create_if_missing: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// `redis://host:port/db`, or empty for in-process state (one node only).
    pub url: ConnectionUrl,
    /// Prefix of every key authd writes, so several deployments can share one Redis.
    pub key_prefix: String,
    pub connect_timeout_seconds: u64,
    /// Timeout of one Redis command; past it the call counts as a cache failure.
    pub command_timeout_ms: u64,
}

/// Which store backs this process, decided once at start from `database.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Postgres,
    /// A SQLite file, or `None` for an in-memory database.
    Sqlite(Option<PathBuf>),
}

impl StoreBackend {
    /// The one-line description logged at start.
    pub fn describe(&self, settings: &DatabaseSettings) -> String {
        match self {
            StoreBackend::Postgres => format!("postgres {}", settings.url.redacted()),
            StoreBackend::Sqlite(Some(path)) => format!("sqlite {}", path.display()),
            StoreBackend::Sqlite(None) => "sqlite in memory (data is lost at exit)".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    /// HS256/384/512 (the `jwt_secret`), RS*/PS* (RSA 2048), ES256/ES384 or EdDSA (Ed25519);
    /// asymmetric keys are generated and stored by authd and published at the JWKS endpoint.
    pub algorithm: JwtAlgorithm,
    /// Signing key for HS* access tokens.
    pub jwt_secret: Secret,
    /// `kid` of the HS* key, put in the JWT header and required on verification.
    pub jwt_key_id: String,
    /// Encrypts the private part of stored asymmetric keys (AES-256-GCM); needed for RS/PS/ES/EdDSA.
    pub key_encryption_key: Secret,
    /// How often each node reloads the stored keys (it also reloads on an unknown `kid`).
    pub key_refresh_seconds: u64,
    /// HMAC key deriving each rotated refresh token from its parent (idempotent grace replies).
    pub refresh_secret: Secret,
    pub access_ttl_seconds: u64,
    pub refresh_ttl_seconds: u64,
    pub refresh_reuse_grace_seconds: u64,
    /// Absolute session lifetime: past it, refresh answers `token_expired` and the user signs in
    /// again, however active (ASVS 3.3.2).
    pub session_max_lifetime_seconds: u64,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// `Secure` flag of the refresh cookie; `None` means on everywhere except development.
    pub cookie_secure: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HasherSettings {
    /// Hashing threads; 0 means one per core.
    pub workers: usize,
    /// Jobs allowed to wait for a thread; past it callers get 503 at once. 0 means 4 x workers.
    pub queue_capacity: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// `Retry-After` sent with 503 `overloaded`.
    pub retry_after_seconds: u64,
    /// Niceness of the hashing threads (0-19, Linux): above 0, HTTP workers pre-empt hashing, so
    /// cheap requests stay fast while the pool is saturated.
    pub thread_nice: i32,
}

impl HasherSettings {
    pub fn effective_workers(&self) -> usize {
        if self.workers == 0 {
            available_cores()
        } else {
            self.workers
        }
    }
    pub fn effective_queue_capacity(&self) -> usize {
        if self.queue_capacity == 0 {
            4 * self.effective_workers()
        } else {
            self.queue_capacity
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Requests per IP on every endpoint except health checks.
    pub general_max: u32,
    pub general_window_seconds: u64,
    /// Stricter per-IP, per-route limit on the credential endpoints in `auth_routes`.
    pub auth_max: u32,
    pub auth_window_seconds: u64,
    pub auth_routes: Vec<String>,
    /// IPv6 clients share one bucket per prefix of this length (a host usually holds a whole /64).
    pub ipv6_prefix_length: u8,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Lowest zxcvbn score (0-4) a new password may have; 0 turns the strength check off.
    pub password_min_score: u8,
    /// The product's name, refused as (part of) a password.
    pub app_name: String,
    /// Whether the email of a deleted account may sign up again.
    pub allow_email_reuse_after_delete: bool,
    /// Login needs a verified email (answered 403 `email_not_verified` after the right password);
    /// signup then answers without tokens and never reveals whether the email had an account.
    pub require_email_verification: bool,
    pub email_verification_ttl_seconds: u64,
    pub password_reset_ttl_seconds: u64,
    pub invitation_ttl_seconds: u64,
    pub lockout: LockoutSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutSettings {
    pub enabled: bool,
    /// Failed logins in a row before an account has to wait.
    pub threshold: u32,
    /// The first wait; each further failure doubles it.
    pub base_delay_seconds: u64,
    /// The longest wait, whatever the number of failures.
    pub max_delay_seconds: u64,
    /// Failures are forgotten this long after the last one.
    pub forget_after_seconds: u64,
}

impl LockoutSettings {
    pub fn policy(&self) -> crate::domain::lockout::LockoutPolicy {
        crate::domain::lockout::LockoutPolicy {
            threshold: self.threshold,
            base_delay: std::time::Duration::from_secs(self.base_delay_seconds),
            max_delay: std::time::Duration::from_secs(self.max_delay_seconds),
            forget_after: std::time::Duration::from_secs(self.forget_after_seconds),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JanitorSettings {
    pub enabled: bool,
    pub interval_seconds: u64,
    /// Rows deleted per statement.
    pub batch_size: u32,
    /// How long revoked sessions, used tokens and delivered mail are kept, for inspection.
    pub retention_seconds: u64,
    /// How long audit events are kept.
    pub events_retention_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve Prometheus metrics at `/metrics` on the main port.
    pub enabled: bool,
    /// Client networks (after `http.trusted_proxies`) that may read `/metrics`; others get 404.
    pub allowed_networks: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` or `json`; empty means pretty in development, json elsewhere.
    pub format: Option<LogFormat>,
    /// A `tracing` filter, e.g. `info` or `authd=debug,info`. `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config error: {setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error("config error: {0}")]
    Load(String),
}

pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The plain variables of the seed apps and the setting each one fills.
pub const SEED_VARIABLES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("DB_POOL_SIZE", "database.pool_size"),
    ("REDIS_URL", "cache.url"),
    ("PORT", "server.port"),
    ("JWT_SECRET", "tokens.jwt_secret"),
    ("FRONTEND_URL", "app.frontend_url"),
    ("RATE_LIMIT_WINDOW", "rate_limit.general_window_seconds"),
    ("RATE_LIMIT_MAX", "rate_limit.general_max"),
];

/// Where the config directory is: `AUTHD_CONFIG_DIR`, else `./config`, else the one in the crate.
pub fn config_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("AUTHD_CONFIG_DIR") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("config");
    if local.join("default.toml").exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// Which environment this process runs in: `AUTHD_ENV`, else `NODE_ENV`, else development.
pub fn environment_from_env() -> Result<Environment, ConfigError> {
    match std::env::var("AUTHD_ENV").or_else(|_| std::env::var("NODE_ENV")) {
        Ok(value) => Environment::parse(&value),
        Err(_) => Ok(Environment::Development),
    }
}

/// Loads the layered settings from files and the process environment, and validates them.
pub fn load() -> Result<Settings, ConfigError> {
    let environment = environment_from_env()?;
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_from(&config_dir(), environment, &vars)
}

/// Loads settings from `dir` for `environment`, with `vars` standing for the process environment.
pub fn load_from(
    dir: &Path,
    environment: Environment,
    vars: &[(String, String)],
) -> Result<Settings, ConfigError> {
    check_whole_numbers(vars)?;
    let mut settings =
        build(dir, environment, vars).map_err(|e| blame(dir, environment, vars, e))?;
    settings.environment = environment;
    settings.validate()?;
    Ok(settings)
}

/// The setting a variable fills: a seed variable's, or `AUTHD__SECTION__KEY` as `section.key`.
fn setting_of(variable: &str) -> Option<String> {
    if let Some((_, key)) = SEED_VARIABLES.iter().find(|(name, _)| *name == variable) {
        return Some(key.to_string());
    }
    let rest = variable.strip_prefix("AUTHD__")?;
    Some(
        rest.split("__")
            .collect::<Vec<_>>()
            .join(".")
            .to_lowercase(),
    )
}

/// The config crate reads `yes`/`no`/`on`/`off` as 1 and 0 for a number (so `PORT=no` would
/// listen on a random port): a variable for a numeric setting must hold a whole number.
fn check_whole_numbers(vars: &[(String, String)]) -> Result<(), ConfigError> {
    let numeric: Vec<String> = reference_entries()
        .into_iter()
        .filter(|e| {
            e.default
                .as_deref()
                .is_some_and(|d| d.parse::<i64>().is_ok())
        })
        .map(|e| e.key)
        .collect();
    for (variable, value) in vars {
        let Some(key) = setting_of(variable) else {
            continue;
        };
        if numeric.contains(&key) && value.trim().parse::<i128>().is_err() {
            return Err(invalid(
                &key,
                format!("{variable} must be a whole number, not {value:?}"),
            ));
        }
    }
    Ok(())
}

/// The config crate's type errors do not always say which key they are about: find the one
/// variable without which the settings load, and name its setting.
fn blame(
    dir: &Path,
    environment: Environment,
    vars: &[(String, String)],
    error: ConfigError,
) -> ConfigError {
    for (index, (variable, _)) in vars.iter().enumerate() {
        let Some(key) = setting_of(variable) else {
            continue;
        };
        let mut others = vars.to_vec();
        others.remove(index);
        if build(dir, environment, &others).is_ok() {
            let reason = match &error {
                ConfigError::Load(message) => message.clone(),
                other => other.to_string(),
            };
            return invalid(&key, format!("{variable}: {reason}"));
        }
    }
    error
}

/// Files and variables, deserialised; not validated.
fn build(
    dir: &Path,
    environment: Environment,
    vars: &[(String, String)],
) -> Result<Settings, ConfigError> {
    let mut seed = config::Config::builder();
    for (var, key) in SEED_VARIABLES {
        if let Some((_, value)) = vars.iter().rev().find(|(name, _)| name == var) {
            seed = seed
                .set_override(*key, value.as_str())
                .map_err(|e| ConfigError::Load(e.to_string()))?;
        }
    }
    let seed = seed.build().map_err(|e| ConfigError::Load(e.to_string()))?;

    let prefixed: config::Map<String, String> = vars
        .iter()
        .filter(|(name, _)| name.starts_with("AUTHD__"))
        .cloned()
        .collect();

    let built = config::Config::builder()
        .add_source(config::File::from(dir.join("default.toml")).required(true))
        .add_source(
            config::File::from(dir.join(format!("{}.toml", environment.as_str()))).required(false),
        )
        .add_source(seed)
        .add_source(
            config::Environment::with_prefix("AUTHD")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("http.cors_allowed_origins")
                .with_list_parse_key("http.trusted_proxies")
                .with_list_parse_key("rate_limit.auth_routes")
                .with_list_parse_key("metrics.allowed_networks")
                .source(Some(prefixed)),
        )
        .build()
        .map_err(|e| ConfigError::Load(e.to_string()))?;

    built
        .try_deserialize()
        .map_err(|e| ConfigError::Load(e.to_string()))
}

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_string(),
        reason: reason.into(),
    }
}

impl Settings {
    pub fn is_development(&self) -> bool {
        self.environment == Environment::Development
    }

    pub fn cookie_secure(&self) -> bool {
        self.tokens.cookie_secure.unwrap_or(!self.is_development())
    }

    pub fn log_format(&self) -> LogFormat {
        self.log.format.unwrap_or(if self.is_development() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        })
    }

    /// The CORS allowlist as browsers send `Origin`: trimmed, without a trailing slash (so
    /// `https://app.example/` and ` https://app.example` both match).
    pub fn cors_origins(&self) -> Vec<String> {
        let normalise = |origin: &String| origin.trim().trim_end_matches('/').to_string();
        if self.http.cors_allowed_origins.is_empty() {
            vec![normalise(&self.app.frontend_url)]
        } else {
            self.http
                .cors_allowed_origins
                .iter()
                .map(normalise)
                .collect()
        }
    }

    /// Normalised base path: empty, or `/x` without a trailing slash.
    pub fn base_path(&self) -> String {
        let trimmed = self.http.base_path.trim().trim_end_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        }
    }

    pub fn store_backend(&self) -> Result<StoreBackend, ConfigError> {
        let url = self.database.url.as_str().trim();
        if url.is_empty() {
            if self.database.sqlite_path.trim().is_empty() {
                return Err(invalid(
                    "database.sqlite_path",
                    "must not be empty when database.url is",
                ));
            }
            return Ok(StoreBackend::Sqlite(Some(PathBuf::from(
                self.database.sqlite_path.trim(),
            ))));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreBackend::Postgres);
        }
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(StoreBackend::Sqlite(None));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if !path.is_empty() {
                return Ok(StoreBackend::Sqlite(Some(PathBuf::from(path))));
            }
        }
        Err(invalid(
            "database.url",
            "must be postgres://..., sqlite://PATH, sqlite::memory:, or empty for the embedded SQLite default",
        ))
    }

    /// The parsed `http.trusted_proxies`; a bare address is a /32 or /128.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        networks("http.trusted_proxies", &self.http.trusted_proxies)
    }

    /// The parsed `metrics.allowed_networks`.
    pub fn metrics_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        networks("metrics.allowed_networks", &self.metrics.allowed_networks)
    }

    /// Whether the cache is shared (Redis) rather than in-process.
    pub fn cache_is_shared(&self) -> bool {
        !self.cache.url.is_empty()
    }

    /// Checks every rule a bad value could break; the first failure names its setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tokens.algorithm.is_symmetric() {
            self.check_secret("tokens.jwt_secret", "JWT_SECRET", &self.tokens.jwt_secret)?;
        } else {
            self.check_secret(
                "tokens.key_encryption_key",
                "AUTHD__TOKENS__KEY_ENCRYPTION_KEY",
                &self.tokens.key_encryption_key,
            )?;
        }
        self.check_secret(
            "tokens.refresh_secret",
            "AUTHD__TOKENS__REFRESH_SECRET",
            &self.tokens.refresh_secret,
        )?;
        if self.tokens.algorithm.is_symmetric()
            && self.tokens.jwt_secret.expose() == self.tokens.refresh_secret.expose()
        {
            return Err(invalid(
                "tokens.refresh_secret",
                "must differ from tokens.jwt_secret",
            ));
        }
        self.store_backend()?;
        self.trusted_proxies()?;
        self.metrics_networks()?;
        if self.cache_is_shared()
            && !self.cache.url.as_str().starts_with("redis://")
            && !self.cache.url.as_str().starts_with("rediss://")
        {
            return Err(invalid(
                "cache.url",
                "must be a redis:// URL, or empty for in-process state",
            ));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        for (setting, value) in [
            (
                "server.client_request_timeout_ms",
                self.server.client_request_timeout_ms,
            ),
            (
                "server.client_body_timeout_ms",
                self.server.client_body_timeout_ms,
            ),
        ] {
            // Zero would switch the bound off: a slow client could then hold a connection forever.
            if value == 0 {
                return Err(invalid(setting, "must be positive"));
            }
        }
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if self.http.max_header_bytes < 1024 {
            return Err(invalid("http.max_header_bytes", "must be at least 1024"));
        }
        if self.tokens.access_ttl_seconds == 0 || self.tokens.access_ttl_seconds > 3600 {
            return Err(invalid(
                "tokens.access_ttl_seconds",
                "must be between 1 and 3600",
            ));
        }
        if self.tokens.refresh_ttl_seconds < self.tokens.access_ttl_seconds {
            return Err(invalid(
                "tokens.refresh_ttl_seconds",
                "must not be shorter than tokens.access_ttl_seconds",
            ));
        }
        if self.tokens.issuer.is_empty() {
            return Err(invalid("tokens.issuer", "must not be empty"));
        }
        if self.tokens.audience.is_empty() {
            return Err(invalid("tokens.audience", "must not be empty"));
        }
        if self.hasher.argon2_parallelism == 0 || self.hasher.argon2_iterations == 0 {
            return Err(invalid(
                "hasher",
                "argon2_iterations and argon2_parallelism must be at least 1",
            ));
        }
        if !(0..=19).contains(&self.hasher.thread_nice) {
            return Err(invalid("hasher.thread_nice", "must be 0 to 19"));
        }
        if self.hasher.argon2_memory_kib < 8 * self.hasher.argon2_parallelism {
            return Err(invalid(
                "hasher.argon2_memory_kib",
                "must be at least 8 x argon2_parallelism",
            ));
        }
        if self.rate_limit.enabled {
            for (setting, value) in [
                ("rate_limit.general_max", self.rate_limit.general_max as u64),
                (
                    "rate_limit.general_window_seconds",
                    self.rate_limit.general_window_seconds,
                ),
                ("rate_limit.auth_max", self.rate_limit.auth_max as u64),
                (
                    "rate_limit.auth_window_seconds",
                    self.rate_limit.auth_window_seconds,
                ),
            ] {
                if value == 0 {
                    return Err(invalid(setting, "limits and windows must be positive"));
                }
            }
        }
        if !(1..=128).contains(&self.rate_limit.ipv6_prefix_length) {
            return Err(invalid(
                "rate_limit.ipv6_prefix_length",
                "must be between 1 and 128",
            ));
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "mail.from",
                "must be an address, optionally with a name: Name <a@b.c>",
            ));
        }
        if self.mail.batch_size == 0
            || self.mail.max_attempts == 0
            || self.mail.poll_interval_ms == 0
        {
            return Err(invalid(
                "mail",
                "batch_size, max_attempts and poll_interval_ms must be positive",
            ));
        }
        if self.tokens.session_max_lifetime_seconds < self.tokens.access_ttl_seconds {
            return Err(invalid(
                "tokens.session_max_lifetime_seconds",
                "must not be shorter than tokens.access_ttl_seconds",
            ));
        }
        if self.janitor.batch_size == 0 {
            return Err(invalid("janitor.batch_size", "must be positive"));
        }
        if self.auth.password_min_score > 4 {
            return Err(invalid(
                "auth.password_min_score",
                "must be between 0 and 4",
            ));
        }
        if self.auth.lockout.enabled {
            let lockout = &self.auth.lockout;
            if lockout.threshold == 0 {
                return Err(invalid("auth.lockout.threshold", "must be positive"));
            }
            if lockout.base_delay_seconds == 0 {
                return Err(invalid(
                    "auth.lockout.base_delay_seconds",
                    "must be positive",
                ));
            }
            if lockout.max_delay_seconds < lockout.base_delay_seconds {
                return Err(invalid(
                    "auth.lockout.max_delay_seconds",
                    "must not be shorter than base_delay_seconds",
                ));
            }
        }
        if self.http.max_body_bytes == 0 {
            return Err(invalid("http.max_body_bytes", "must be positive"));
        }
        // With no allowlist the frontend's URL is the origin: a bad one is reported as that setting.
        let origins_setting = if self.http.cors_allowed_origins.is_empty() {
            "app.frontend_url"
        } else {
            "http.cors_allowed_origins"
        };
        for origin in self.cors_origins() {
            if origin == "*" {
                return Err(invalid(
                    origins_setting,
                    "\"*\" cannot be used: credentials (the refresh cookie) are allowed, so origins must be listed",
                ));
            }
            let host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if !host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '?', '#', ' '])) {
                return Err(invalid(
                    origins_setting,
                    format!("{origin:?} is not an http(s) origin (scheme://host[:port], no path)"),
                ));
            }
        }
        Ok(())
    }

    fn check_secret(
        &self,
        setting: &str,
        variable: &str,
        secret: &Secret,
    ) -> Result<(), ConfigError> {
        if secret.is_empty() {
            return Err(invalid(setting, format!("is not set (set {variable})")));
        }
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(invalid(
                setting,
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        if !self.is_development() && EXAMPLE_SECRETS.contains(&secret.expose()) {
            return Err(invalid(
                setting,
                format!("is the example secret, refused outside development (set {variable})"),
            ));
        }
        Ok(())
    }

    /// The effective settings as TOML, secrets and URL passwords redacted.
    pub fn redacted_toml(&self) -> String {
        toml_like(&serde_json::to_value(self).unwrap_or_default())
    }
}

/// Renders a two-level JSON object as TOML sections (enough for `config check`).
fn toml_like(value: &serde_json::Value) -> String {
    let mut top = String::new();
    let mut sections = String::new();
    if let serde_json::Value::Object(map) = value {
        for (key, value) in map {
            match value {
                serde_json::Value::Object(inner) => {
                    sections.push_str(&format!("\n[{key}]\n"));
                    for (k, v) in inner {
                        if !v.is_null() {
                            sections.push_str(&format!("{k} = {v}\n"));
                        }
                    }
                }
                other => top.push_str(&format!("{key} = {other}\n")),
            }
        }
    }
    top + &sections
}

/// CIDRs or bare addresses (a /32 or /128) from a list setting.
fn networks(setting: &str, entries: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| invalid(setting, format!("{entry:?} is not a CIDR or an IP address")))
        })
        .collect()
}

/// The defaults file compiled in: the source of `authd config reference`.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// One documented setting of `config/default.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceEntry {
    /// `section.key` (or `section.sub.key`).
    pub key: String,
    /// As written in the file; `None` for an optional key that is unset by default.
    pub default: Option<String>,
    pub meaning: String,
}

/// Every setting with its default and meaning, read from `config/default.toml` (the comment lines
/// right above a key are its meaning; `# key = value` marks an optional, unset key).
pub fn reference_entries() -> Vec<ReferenceEntry> {
    let mut entries = Vec::new();
    let mut section = String::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in DEFAULT_TOML.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            comment.clear();
            continue;
        }
        if line.is_empty() {
            comment.clear();
            continue;
        }
        let (optional, assignment) = match line.strip_prefix('#') {
            Some(text) => {
                let text = text.trim();
                let is_key = text.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                if !is_key || section.is_empty() {
                    comment.push(text);
                    continue;
                }
                (true, text)
            }
            None => (false, line),
        };
        let Some((key, value)) = assignment.split_once(" = ") else {
            continue;
        };
        entries.push(ReferenceEntry {
            key: format!("{section}.{}", key.trim()),
            default: (!optional).then(|| value.trim().to_string()),
            meaning: comment.join(" "),
        });
        comment.clear();
    }
    entries
}

/// The environment variables that set `key`: `AUTHD__SECTION__KEY`, and a seed variable if any.
pub fn variables_for(key: &str) -> Vec<String> {
    let mut vars = vec![format!(
        "AUTHD__{}",
        key.replace('.', "__").to_ascii_uppercase()
    )];
    vars.extend(
        SEED_VARIABLES
            .iter()
            .filter(|(_, setting)| *setting == key)
            .map(|(var, _)| var.to_string()),
    );
    vars
}

/// The README's configuration table, generated.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "| setting | default | environment variables | meaning |\n|---|---|---|---|\n",
    );
    for entry in reference_entries() {
        let default = entry
            .default
            .map(|d| format!("`{}`", d.replace('|', "\\|")))
            .unwrap_or_else(|| "unset".into());
        let vars = variables_for(&entry.key)
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| `{}` | {default} | {vars} | {} |\n",
            entry.key,
            entry.meaning.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const GOOD_JWT: &str = "a-production-jwt-secret-of-enough-length-1234";
    const GOOD_REFRESH: &str = "a-production-refresh-secret-of-enough-length-1234";

    fn production_vars(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all = vec![
            ("DATABASE_URL", "postgres://u:p@db:5432/authd"),
            ("REDIS_URL", "redis://cache:6379/0"),
            ("JWT_SECRET", GOOD_JWT),
            ("AUTHD__TOKENS__REFRESH_SECRET", GOOD_REFRESH),
        ];
        all.extend_from_slice(extra);
        vars(&all)
    }

    #[test]
    fn development_defaults_to_the_embedded_backends() {
        let settings = load_from(&dir(), Environment::Development, &[]).expect("loads");
        assert_eq!(
            settings.store_backend().unwrap(),
            StoreBackend::Sqlite(Some(PathBuf::from("data/authd.db")))
        );
        assert!(!settings.cache_is_shared());
        assert_eq!(settings.tokens.access_ttl_seconds, 900);
        assert_eq!(settings.tokens.refresh_ttl_seconds, 7 * 24 * 3600);
        assert_eq!(settings.hasher.argon2_memory_kib, 65536);
        assert!(!settings.cookie_secure());
        assert_eq!(settings.log_format(), LogFormat::Pretty);
    }

    #[test]
    fn example_secrets_are_refused_in_production() {
        let err = load_from(
            &dir(),
            Environment::Production,
            &vars(&[
                ("DATABASE_URL", "postgres://db/authd"),
                ("REDIS_URL", "redis://cache"),
                ("JWT_SECRET", EXAMPLE_SECRETS[0]),
                ("AUTHD__TOKENS__REFRESH_SECRET", GOOD_REFRESH),
            ]),
        )
        .unwrap_err();
        let line = err.to_string();
        assert!(line.contains("tokens.jwt_secret"), "{line}");
        assert!(line.contains("example secret"), "{line}");
    }

    #[test]
    fn short_secret_names_the_setting() {
        let err = load_from(
            &dir(),
            Environment::Production,
            &production_vars(&[("JWT_SECRET", "short")]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("tokens.jwt_secret: must be at least 32 bytes"),
            "{err}"
        );
    }

    #[test]
    fn seed_variables_fill_settings_and_prefixed_ones_win() {
        let settings = load_from(
            &dir(),
            Environment::Production,
            &production_vars(&[
                ("PORT", "9000"),
                ("DB_POOL_SIZE", "7"),
                ("RATE_LIMIT_MAX", "42"),
                ("RATE_LIMIT_WINDOW", "30"),
                ("FRONTEND_URL", "https://app.example.com"),
                ("AUTHD__SERVER__PORT", "9100"),
                (
                    "AUTHD__HTTP__CORS_ALLOWED_ORIGINS",
                    "https://a.example.com,https://b.example.com",
                ),
            ]),
        )
        .expect("loads");
        assert_eq!(settings.server.port, 9100);
        assert_eq!(settings.database.pool_size, 7);
        assert_eq!(settings.rate_limit.general_max, 42);
        assert_eq!(settings.rate_limit.general_window_seconds, 30);
        assert_eq!(settings.app.frontend_url, "https://app.example.com");
        assert_eq!(
            settings.cors_origins(),
            vec!["https://a.example.com", "https://b.example.com"]
        );
        assert!(settings.cookie_secure());
        assert_eq!(settings.log_format(), LogFormat::Json);
    }

    #[test]
    fn unknown_keys_stop_the_start() {
        let err = load_from(
            &dir(),
            Environment::Production,
            &production_vars(&[("AUTHD__TOKENS__ACESS_TTL_SECONDS", "60")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("acess_ttl_seconds"), "{err}");
    }

    #[test]
    fn database_urls_pick_the_backend() {
        let backend = |url: &str| {
            load_from(
                &dir(),
                Environment::Development,
                &vars(&[("DATABASE_URL", url)]),
            )
            .map(|s| s.store_backend().unwrap())
        };
        assert_eq!(
            backend("postgres://db/authd").unwrap(),
            StoreBackend::Postgres
        );
        assert_eq!(
            backend("sqlite::memory:").unwrap(),
            StoreBackend::Sqlite(None)
        );
        assert_eq!(
            backend("sqlite://var/authd.db").unwrap(),
            StoreBackend::Sqlite(Some(PathBuf::from("var/authd.db")))
        );
        let err = backend("mysql://db/authd").unwrap_err();
        assert!(err.to_string().contains("database.url"), "{err}");
    }

    #[test]
    fn wildcard_cors_is_refused() {
        let err = load_from(
            &dir(),
            Environment::Production,
            &production_vars(&[("AUTHD__HTTP__CORS_ALLOWED_ORIGINS", "*")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("http.cors_allowed_origins"),
            "{err}"
        );
    }

    #[test]
    fn cors_origins_are_normalised_and_paths_refused() {
        let settings = load_from(
            &dir(),
            Environment::Production,
            &production_vars(&[(
                "AUTHD__HTTP__CORS_ALLOWED_ORIGINS",
                "https://app.example/, http://127.0.0.1:5555",
            )]),
        )
        .unwrap();
        assert_eq!(
            settings.cors_origins(),
            ["https://app.example", "http://127.0.0.1:5555"]
        );
        for bad in ["https://app.example/login", "app.example", "https://"] {
            let err = load_from(
                &dir(),
                Environment::Production,
                &production_vars(&[("AUTHD__HTTP__CORS_ALLOWED_ORIGINS", bad)]),
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("http.cors_allowed_origins"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn redacted_output_hides_secrets_and_url_passwords() {
        let settings =
            load_from(&dir(), Environment::Production, &production_vars(&[])).expect("loads");
        let text = settings.redacted_toml();
        assert!(!text.contains(GOOD_JWT));
        assert!(!text.contains(GOOD_REFRESH));
        assert!(!text.contains("u:p@"), "{text}");
        assert!(text.contains("postgres://u:***@db:5432/authd"), "{text}");
        assert!(text.contains("[redacted]"));
    }

    #[test]
    fn the_reference_covers_exactly_the_settings_struct() {
        fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
            match value.as_object() {
                Some(map) => {
                    for (k, v) in map {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        leaves(&key, v, out);
                    }
                }
                None => out.push(prefix.to_string()),
            }
        }
        let settings = load_from(&dir(), Environment::Development, &[]).unwrap();
        let mut from_struct = Vec::new();
        leaves(
            "",
            &serde_json::to_value(&settings).unwrap(),
            &mut from_struct,
        );
        from_struct.retain(|k| k != "environment");
        from_struct.sort();
        let mut documented: Vec<String> = reference_entries().into_iter().map(|e| e.key).collect();
        documented.sort();
        assert_eq!(documented, from_struct);
        for entry in reference_entries() {
            assert!(!entry.meaning.is_empty(), "{} has no meaning", entry.key);
        }
    }

    #[test]
    fn the_configuration_doc_carries_the_generated_reference() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
        )
        .unwrap();
        let start = "<!-- config-reference:start (generated by `authd config reference`) -->\n";
        let end = "<!-- config-reference:end -->";
        let block = doc
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(block, _)| block)
            .expect("docs/configuration.md has the config reference markers");
        assert!(
            block == reference_markdown(),
            "docs/configuration.md is stale: run `cargo run -q -- config reference` and paste it between the markers"
        );
    }

    /// Property tests: whatever the environment holds, loading ends in settings or in an error
    /// that names what to fix, never in a panic.
    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn variable(key: &str) -> String {
            format!("AUTHD__{}", key.replace('.', "__").to_uppercase())
        }

        /// The error names the setting (`server.port`, its last part, or its variable).
        fn names(error: &ConfigError, key: &str, variable: &str) -> bool {
            let text = error.to_string();
            let last = key.rsplit('.').next().unwrap_or(key);
            text.contains(key) || text.contains(last) || text.contains(variable)
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "-?[0-9]{1,25}",
                "(true|false|yes|no|on|off|1|0|-1)",
                "[ -~]{0,64}",
                "([a-z]{1,8}://[a-z0-9.:@/]{0,20}, ?){0,3}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn any_value_of_any_setting_loads_or_names_the_setting(
                index in any::<prop::sample::Index>(),
                value in value(),
            ) {
                let keys: Vec<String> = reference_entries().into_iter().map(|e| e.key).collect();
                let key = &keys[index.index(keys.len())];
                let var = variable(key);
                if let Err(e) = load_from(&dir(), Environment::Development, &vars(&[(&var, &value)])) {
                    prop_assert!(names(&e, key, &var), "{var}={value:?}: {e}");
                }
            }

            #[test]
            fn any_seed_variable_loads_or_names_the_setting(
                index in any::<prop::sample::Index>(),
                value in value(),
            ) {
                let (var, key) = SEED_VARIABLES[index.index(SEED_VARIABLES.len())];
                if let Err(e) = load_from(&dir(), Environment::Production, &production_vars(&[(var, &value)])) {
                    prop_assert!(names(&e, key, var), "{var}={value:?}: {e}");
                }
            }

            #[test]
            fn unknown_or_misplaced_variables_are_refused_by_name(
                name in "[A-Z][A-Z_]{0,20}(__[A-Z][A-Z_]{0,20}){0,2}",
                value in value(),
            ) {
                let var = format!("AUTHD__{name}");
                if let Err(e) = load_from(&dir(), Environment::Development, &vars(&[(&var, &value)])) {
                    let named = name.split("__").any(|part| e.to_string().contains(&part.to_lowercase()));
                    prop_assert!(named, "{var}={value:?}: {e}");
                }
            }
        }
    }
}
