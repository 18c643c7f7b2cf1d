//! The settings, section by section, and their derived values.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use super::{invalid, ConfigError};
use crate::domain::jwt_algorithm::JwtAlgorithm;
use crate::domain::retry::RetryPolicy;

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

/// Different characters a secret must hold outside development. `aaaa...`, or a word repeated to
/// length, has few: a guessable key (RFC 8725 §3.5, ASVS V6). A random one has more: 32 hex
/// digits (`openssl rand -hex 16`, the shortest random secret the length allows) held fewer than
/// 9 different ones in none of 200,000 draws, fewer than 12 in 1.7% of them (too often).
pub const MIN_DISTINCT_SECRET_BYTES: usize = 9;

/// Whether `secret` holds at least [`MIN_DISTINCT_SECRET_BYTES`] different bytes.
pub fn looks_random(secret: &str) -> bool {
    let mut seen = [false; 256];
    for byte in secret.bytes() {
        seen[usize::from(byte)] = true;
    }
    seen.iter().filter(|seen| **seen).count() >= MIN_DISTINCT_SECRET_BYTES
}

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
    /// The URL with its secrets replaced by `***`: the password, a user name that stands alone
    /// (a proxy's or Redis's token is often given that way), and a `password` query parameter
    /// (tokio-postgres reads one). A string that does not parse as a URL is hidden whole.
    pub fn redacted(&self) -> String {
        const HIDDEN: &str = "***";
        if self.0.trim().is_empty() {
            // Unset (the embedded default): nothing to hide, and "***" would read as set.
            return String::new();
        }
        let Ok(mut url) = url::Url::parse(self.0.trim()) else {
            return HIDDEN.to_string();
        };
        let hidden_user = url.password().is_none() && !url.username().is_empty();
        let redacted_userinfo = if url.password().is_some() {
            url.set_password(Some(HIDDEN))
        } else if hidden_user {
            url.set_username(HIDDEN)
        } else {
            Ok(())
        };
        if redacted_userinfo.is_err() {
            return HIDDEN.to_string();
        }
        if url
            .query_pairs()
            .any(|(key, _)| key.eq_ignore_ascii_case("password"))
        {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(key, value)| {
                    let value = if key.eq_ignore_ascii_case("password") {
                        HIDDEN.to_string()
                    } else {
                        value.into_owned()
                    };
                    (key.into_owned(), value)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
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
    pub oauth: OAuthSettings,
    pub webhooks: WebhookSettings,
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
    pub email_login_path: String,
    pub email_change_path: String,
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
    /// PostgreSQL: the longest a statement may take (server-side `statement_timeout`; the
    /// client waits a second more), and the connections' TCP user timeout.
    pub statement_timeout_ms: u64,
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
    /// Seals the private part of stored asymmetric keys and the TOTP secrets (AES-256-GCM).
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
    /// Jobs allowed to wait for a thread; past it callers get 503 at once. 0 means as many as the
    /// workers hash within 3/4 of `max_queue_wait_ms`, timed at start.
    pub queue_capacity: usize,
    /// The longest a job may wait in the queue: one still waiting then is answered 503 without
    /// running. Also sizes the queue when `queue_capacity` is 0.
    pub max_queue_wait_ms: u64,
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
    /// Reset and verification mails one address may get per window (each kind its own); further
    /// requests are answered alike and send nothing, so nobody can flood a mailbox.
    pub link_mails_per_address: u32,
    pub link_mail_window_seconds: u64,
    /// A sensitive action (a factor enrolled or removed, a password change, an account deleted)
    /// needs a session that proved itself within this many seconds, at level 2 where the account
    /// has a second factor; else 403 `reauthentication_required`.
    pub reauthentication_seconds: u64,
    /// The same rule for the admin endpoints that change something.
    pub admin_reauthentication: bool,
    pub lockout: LockoutSettings,
    pub mfa: MfaSettings,
    pub passkeys: PasskeySettings,
    pub passwordless: PasswordlessSettings,
    pub breached_passwords: BreachedPasswordSettings,
}

/// Passwordless sign-in by email.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordlessSettings {
    pub enabled: bool,
    pub ttl_seconds: u64,
    pub max_code_attempts: u32,
    pub max_mails: u32,
    pub mail_window_seconds: u64,
}

/// What a breach check does when the range API cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BreachFallback {
    /// Fail open: the password is taken (logged and counted).
    Allow,
    /// Fail closed: the password is refused, and the user asked to retry.
    Refuse,
}

/// Breached-password checks (HIBP range API, k-anonymity; and an optional local list).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreachedPasswordSettings {
    pub enabled: bool,
    pub range_url: String,
    pub timeout_ms: u64,
    pub on_unavailable: BreachFallback,
    pub offline_list: String,
}

/// Sign-in with other providers (OAuth 2.0 / OpenID Connect).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// authd's own public URL (scheme, host, port; the base path is added), the base of the
    /// callback URLs registered with each provider: `<this><base_path>/auth/oauth/<name>/callback`.
    pub callback_base_url: String,
    /// Where a browser may be sent back to after signing in (`returnTo`): each entry an origin
    /// with an optional path prefix. Empty = the origin of `app.frontend_url`.
    pub allowed_return_urls: Vec<String>,
    /// An unknown identity whose address has no account gets a new account.
    pub allow_signup: bool,
    /// How long the state of a sign-in (state, PKCE verifier, nonce) waits for the callback,
    /// and an issued native nonce for its ID token.
    pub flow_ttl_seconds: u64,
    /// Which nonces a native app's ID token may carry.
    pub native_nonces: NativeNonces,
    /// How long authd waits for a provider (discovery, keys, token and user endpoints).
    pub provider_timeout_ms: u64,
    /// The providers, by the name used in the paths (`/auth/oauth/<name>/...`).
    pub providers: std::collections::BTreeMap<String, OAuthProviderSettings>,
}

/// Which nonces `POST /auth/oauth/<name>/token` accepts in a native app's ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NativeNonces {
    /// One authd issued (`POST /auth/oauth/<name>/nonce`), unused and unexpired, for that
    /// provider: a token whose nonce authd did not give out (another app's, one read off a
    /// stolen token after its own use) opens nothing.
    Issued,
    /// Any nonce the app made itself, as the token carries it (raw or its SHA-256).
    Any,
}

/// What kind of provider, which says which protocol and endpoints it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuthProviderKind {
    /// Any OpenID Connect provider, from its discovery document (`issuer`).
    Oidc,
    /// Google (OpenID Connect, issuer `https://accounts.google.com`).
    Google,
    /// Apple (OpenID Connect; the client secret is a JWT signed with the team key).
    Apple,
    /// GitHub (plain OAuth 2.0; the account from `/user` and `/user/emails`).
    Github,
}

/// One provider. URLs left empty take the kind's well-known ones; tests point them at loopback.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthProviderSettings {
    pub kind: OAuthProviderKind,
    /// The name shown to users; empty = the provider's key.
    #[serde(default)]
    pub display_name: String,
    pub client_id: String,
    /// Not used by Apple, whose secret authd signs with `private_key`.
    #[serde(default)]
    pub client_secret: Secret,
    /// OpenID Connect issuer (discovery at `<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub issuer: String,
    /// GitHub's endpoints: authorization, token and API base.
    #[serde(default)]
    pub authorization_url: String,
    #[serde(default)]
    pub token_url: String,
    #[serde(default)]
    pub api_url: String,
    /// Scopes asked for; empty = the kind's (`openid email profile`, GitHub `read:user user:email`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences accepted besides `client_id` for ID tokens that native apps exchange
    /// (`POST /auth/oauth/<name>/token`): the iOS/Android client ids.
    #[serde(default)]
    pub native_client_ids: Vec<String>,
    /// Apple: the team id, the key id and the key (PKCS#8 PEM) that sign the client secret.
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub key_id: String,
    #[serde(default)]
    pub private_key: Secret,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeySettings {
    /// Users may register passkeys (WebAuthn) and sign in with them.
    pub enabled: bool,
    /// The WebAuthn relying-party id: the site's domain; empty = the host of `app.frontend_url`.
    /// Changing it later invalidates every registered passkey.
    pub rp_id: String,
    /// Origins of the pages that run the ceremonies; empty = `app.frontend_url`'s origin.
    pub origins: Vec<String>,
    /// How long a ceremony's server-side state lives between its two requests.
    pub ceremony_ttl_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MfaSettings {
    /// Whose accounts must have a second factor: `optional`, `admins` or `everyone`. A covered
    /// session below level 2 may only enrol one (or step up); anything else is 403
    /// `mfa_enrollment_required`.
    pub required: crate::domain::assurance::MfaRequirement,
    /// Users may enrol TOTP (needs `tokens.key_encryption_key`, which seals the secrets).
    pub totp_enabled: bool,
    /// Time steps of 30 s accepted either side of the current one, for clocks that drift.
    pub totp_skew_steps: u8,
    /// How long an enrolment waits for its first code.
    pub enrolment_ttl_seconds: u64,
    /// How long the second step of a login may take (`mfaToken`).
    pub challenge_ttl_seconds: u64,
    /// Codes one `mfaToken` may try before the login must start over.
    pub challenge_max_attempts: u32,
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
    /// How long revoked sessions, used tokens, delivered mail and sent or dead webhook deliveries
    /// are kept, for inspection.
    pub retention_seconds: u64,
    /// How long audit events are kept.
    pub events_retention_seconds: u64,
}

/// Webhooks on audit events, delivered by the dispatcher through a durable queue.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Queue a delivery for each subscribed endpoint with every audit event, run the dispatcher
    /// and serve `/admin/webhooks` (needs `tokens.key_encryption_key`, which seals the secrets).
    pub enabled: bool,
    /// How often the dispatcher looks for due deliveries (it is also woken when one is queued).
    pub poll_interval_ms: u64,
    /// Deliveries claimed at most per look.
    pub batch_size: u32,
    /// Requests in flight at once, per process.
    pub max_concurrency: u32,
    /// One delivery's whole request: connecting, sending, the answer's status.
    pub request_timeout_ms: u64,
    /// Attempts before a delivery is marked dead.
    pub max_attempts: u32,
    pub backoff_base_seconds: u64,
    pub backoff_max_seconds: u64,
    /// Plain `http://` targets (tests, a receiver on the same host).
    pub allow_insecure_targets: bool,
    /// Targets at loopback, private, link-local and other non-public addresses.
    pub allow_private_targets: bool,
    /// An HTTP(S) proxy for every delivery (its password, if any, is never shown); empty = none.
    pub proxy_url: ConnectionUrl,
    /// Endpoints of the configuration, stored (source `config`) at start.
    pub endpoints: Vec<WebhookEndpointSettings>,
}

impl MailSettings {
    pub fn retry_policy(&self) -> RetryPolicy {
        retry_policy(
            self.max_attempts,
            self.backoff_base_seconds,
            self.backoff_max_seconds,
        )
    }
}

fn retry_policy(max_attempts: u32, base_seconds: u64, max_seconds: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: std::time::Duration::from_secs(base_seconds),
        max: std::time::Duration::from_secs(max_seconds),
    }
}

impl WebhookSettings {
    pub fn retry_policy(&self) -> RetryPolicy {
        retry_policy(
            self.max_attempts,
            self.backoff_base_seconds,
            self.backoff_max_seconds,
        )
    }

    pub fn target_policy(&self) -> crate::domain::webhooks::TargetPolicy {
        crate::domain::webhooks::TargetPolicy {
            allow_insecure: self.allow_insecure_targets,
            allow_private: self.allow_private_targets,
        }
    }

    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.request_timeout_ms)
    }
}

/// One endpoint of `webhooks.endpoints`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointSettings {
    /// Shown by `config check` as its origin only (the path or query often holds a token).
    #[serde(serialize_with = "serialize_shown_url")]
    pub url: String,
    /// `whsec_` + base64 of 24 to 64 bytes, shared with the receiver.
    pub secret: Secret,
    /// Audit event kinds, or `["*"]` for every kind.
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
}

fn serialize_shown_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::domain::webhooks::shown_url(url))
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

/// Dependencies whose debug output carries what authd never logs: tokio-postgres prints every
/// statement's parameters (queued mails with their links and codes, password hashes), lettre
/// the messages it sends, the HTTP clients the URLs and headers of webhook and provider calls.
/// Under a default level more verbose than `info` they stay at `info`, unless a directive names
/// them (a directive for one of their modules applies to that module only).
const QUIET_DEPENDENCIES: [&str; 7] = [
    "tokio_postgres",
    "lettre",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

/// `requested`'s directives, trimmed (EnvFilter reads ` info` as a target, not a level), and
/// then: refinery logs a debug dump of every migration, SQL text included, at info (authd logs
/// each migration it applies itself), so it speaks only of problems unless named; the
/// `QUIET_DEPENDENCIES` are held at info when the default level would let their debug lines
/// through.
pub fn log_directives(requested: &str) -> String {
    let given: Vec<&str> = requested
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let names = |target: &str| {
        given.iter().any(|d| {
            // Only the crate itself: a directive for one of its modules is more specific than
            // the cap, so it applies to that module and the cap to the rest.
            d.split(['=', '[']).next().unwrap_or_default().trim() == target
        })
    };
    let verbose = given
        .iter()
        .filter(|d| !d.contains('='))
        .any(|level| ["debug", "trace"].contains(&level.to_ascii_lowercase().as_str()));
    let mut all: Vec<String> = given.iter().map(|d| d.to_string()).collect();
    if !names("refinery_core") {
        all.push("refinery_core=warn".into());
    }
    if verbose {
        let quiet = QUIET_DEPENDENCIES.iter().filter(|target| !names(target));
        all.extend(quiet.map(|target| format!("{target}=info")));
    }
    all.join(",")
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
    /// The WebAuthn relying party for passkeys, `None` when they are off. Its id and origins
    /// default to `app.frontend_url`: the ceremonies run in the frontend's pages.
    pub fn webauthn(&self) -> Result<Option<webauthn_rs::Webauthn>, ConfigError> {
        let passkeys = &self.auth.passkeys;
        if !passkeys.enabled {
            return Ok(None);
        }
        let parse = |setting: &str, origin: &str| {
            webauthn_rs::prelude::Url::parse(origin.trim())
                .map_err(|e| invalid(setting, format!("{origin:?} is not an origin: {e}")))
        };
        let origins = if passkeys.origins.is_empty() {
            vec![parse("app.frontend_url", &self.app.frontend_url)?]
        } else {
            passkeys
                .origins
                .iter()
                .map(|o| parse("auth.passkeys.origins", o))
                .collect::<Result<Vec<_>, _>>()?
        };
        // Derived from the origins when not set: a bad origin is then the setting to name.
        let (rp_id, rp_setting) = match (passkeys.rp_id.is_empty(), passkeys.origins.is_empty()) {
            (false, _) => (passkeys.rp_id.clone(), "auth.passkeys.rp_id"),
            (true, true) => (
                origins[0].host_str().unwrap_or_default().to_string(),
                "app.frontend_url",
            ),
            (true, false) => (
                origins[0].host_str().unwrap_or_default().to_string(),
                "auth.passkeys.origins",
            ),
        };
        let refused = |e: webauthn_rs::prelude::WebauthnError| {
            invalid(
                rp_setting,
                format!("{rp_id:?} does not fit the origins (a domain, not an IP address, that each origin is or is under): {e}"),
            )
        };
        let mut builder =
            webauthn_rs::WebauthnBuilder::new(&rp_id, &origins[0]).map_err(refused)?;
        for origin in &origins[1..] {
            builder = builder.append_allowed_origin(origin);
        }
        builder = builder.rp_name(&self.auth.app_name);
        Ok(Some(builder.build().map_err(refused)?))
    }

    /// Where browsers may return after a sign-in through a provider: `oauth.allowed_return_urls`,
    /// or the origin of `app.frontend_url`.
    pub fn return_urls(&self) -> Result<crate::domain::federation::ReturnUrls, ConfigError> {
        let (setting, entries) = if self.oauth.allowed_return_urls.is_empty() {
            ("app.frontend_url", vec![self.app.frontend_url.clone()])
        } else {
            (
                "oauth.allowed_return_urls",
                self.oauth.allowed_return_urls.clone(),
            )
        };
        crate::domain::federation::ReturnUrls::parse(&entries).map_err(|e| invalid(setting, e))
    }

    /// Checks each `oauth.providers.<name>`: the settings its kind needs, and URLs that parse.
    pub fn check_providers(&self) -> Result<(), ConfigError> {
        let base = self.oauth.callback_base_url.trim();
        let base_ok = url::Url::parse(base)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some());
        if !self.oauth.providers.is_empty() && !base_ok {
            return Err(invalid(
                "oauth.callback_base_url",
                "must be authd's public http(s) URL when providers are configured",
            ));
        }
        if !self.oauth.providers.is_empty()
            && self.environment == Environment::Production
            && !base.starts_with("https://")
        {
            return Err(invalid(
                "oauth.callback_base_url",
                "must be https in production (providers send codes to it)",
            ));
        }
        for (name, provider) in &self.oauth.providers {
            let setting = |key: &str| format!("oauth.providers.{name}.{key}");
            let named_ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !named_ok {
                return Err(invalid(
                    &format!("oauth.providers.{name}"),
                    "a provider's name must be 1 to 64 of a-z, 0-9, - and _",
                ));
            }
            let missing = |key: &str, empty: bool| {
                if empty {
                    Err(invalid(&setting(key), "is required for this provider"))
                } else {
                    Ok(())
                }
            };
            missing("client_id", provider.client_id.trim().is_empty())?;
            match provider.kind {
                OAuthProviderKind::Oidc => missing("issuer", provider.issuer.trim().is_empty())?,
                OAuthProviderKind::Github => {
                    missing("client_secret", provider.client_secret.is_empty())?
                }
                OAuthProviderKind::Apple => {
                    missing("team_id", provider.team_id.trim().is_empty())?;
                    missing("key_id", provider.key_id.trim().is_empty())?;
                    jsonwebtoken::EncodingKey::from_ec_pem(
                        provider.private_key.expose().as_bytes(),
                    )
                    .map_err(|_| {
                        invalid(
                            &setting("private_key"),
                            "must be the team's ES256 key (PKCS#8 PEM)",
                        )
                    })?;
                }
                OAuthProviderKind::Google => {}
            }
            for (key, value) in [
                ("issuer", &provider.issuer),
                ("authorization_url", &provider.authorization_url),
                ("token_url", &provider.token_url),
                ("api_url", &provider.api_url),
            ] {
                if !value.trim().is_empty() && url::Url::parse(value.trim()).is_err() {
                    return Err(invalid(&setting(key), format!("{value:?} is not a URL")));
                }
            }
        }
        Ok(())
    }

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
pub(super) fn networks(
    setting: &str,
    entries: &[String],
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
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

pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
