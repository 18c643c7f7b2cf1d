//! Every check made before authd starts: secrets, URLs, networks, ranges, combinations.

use super::*;

/// Browsers keep no cookie longer than 400 days (RFC 6265bis), so a longer refresh lifetime would
/// only be cut short (and past i64 it would turn the cookie's Max-Age negative).
const MAX_COOKIE_LIFETIME_SECONDS: u64 = 400 * 86_400;
/// Ten years: past this an absolute lifetime is no limit, and intervals stop being representable.
const MAX_SESSION_LIFETIME_SECONDS: u64 = 10 * 365 * 86_400;

impl Settings {
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
        if self.auth.mfa.totp_enabled && self.tokens.algorithm.is_symmetric() {
            self.check_secret(
                "tokens.key_encryption_key",
                "AUTHD__TOKENS__KEY_ENCRYPTION_KEY, or auth.mfa.totp_enabled = false",
                &self.tokens.key_encryption_key,
            )?;
        }
        if self.webhooks.enabled && self.tokens.algorithm.is_symmetric() {
            self.check_secret(
                "tokens.key_encryption_key",
                "AUTHD__TOKENS__KEY_ENCRYPTION_KEY, or webhooks.enabled = false",
                &self.tokens.key_encryption_key,
            )?;
        }
        self.check_secret(
            "tokens.refresh_secret",
            "AUTHD__TOKENS__REFRESH_SECRET",
            &self.tokens.refresh_secret,
        )?;
        if self.tokens.algorithm.is_symmetric()
            && !self.tokens.key_encryption_key.is_empty()
            && self.tokens.jwt_secret.expose() == self.tokens.key_encryption_key.expose()
        {
            return Err(invalid(
                "tokens.key_encryption_key",
                "must differ from tokens.jwt_secret",
            ));
        }
        if self.tokens.algorithm.is_symmetric()
            && self.tokens.jwt_secret.expose() == self.tokens.refresh_secret.expose()
        {
            return Err(invalid(
                "tokens.refresh_secret",
                "must differ from tokens.jwt_secret",
            ));
        }
        if self.auth.mfa.required != crate::domain::assurance::MfaRequirement::Optional
            && !self.auth.mfa.totp_enabled
            && !self.auth.passkeys.enabled
        {
            return Err(invalid(
                "auth.mfa.required",
                "needs a factor to enrol: auth.mfa.totp_enabled or auth.passkeys.enabled",
            ));
        }
        self.store_backend()?;
        self.webauthn()?;
        self.return_urls()?;
        self.check_providers()?;
        self.check_webhook_endpoints()?;
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
        if let Some((setting, rule)) = self.broken_range() {
            return Err(invalid(setting, rule));
        }
        if self.environment == Environment::Production {
            self.check_production_transport()?;
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
            if origin.contains('*') {
                return Err(invalid(
                    origins_setting,
                    format!("{origin:?}: patterns are not supported, list each origin"),
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

    /// The first number or combination out of range, as (setting, rule): every bound in one
    /// table, read top to bottom.
    fn broken_range(&self) -> Option<(&'static str, &'static str)> {
        let (server, tokens, hasher) = (&self.server, &self.tokens, &self.hasher);
        let (limits, mail, lockout) = (&self.rate_limit, &self.mail, &self.auth.lockout);
        let webhooks = &self.webhooks;
        // Zero would switch a timeout off: a slow client could then hold a connection forever.
        let no_timeout = "must be positive";
        let limit_rule = "limits and windows must be positive";
        let zero_limit = [
            ("rate_limit.general_max", u64::from(limits.general_max)),
            (
                "rate_limit.general_window_seconds",
                limits.general_window_seconds,
            ),
            ("rate_limit.auth_max", u64::from(limits.auth_max)),
            ("rate_limit.auth_window_seconds", limits.auth_window_seconds),
        ]
        .into_iter()
        .find(|(_, value)| limits.enabled && *value == 0)
        .map(|(setting, _)| setting);
        let rules = [
            (
                self.database.pool_size == 0,
                "database.pool_size",
                "must be at least 1",
            ),
            (
                self.database.statement_timeout_ms == 0,
                "database.statement_timeout_ms",
                no_timeout,
            ),
            (
                server.client_request_timeout_ms == 0,
                "server.client_request_timeout_ms",
                no_timeout,
            ),
            (
                server.client_body_timeout_ms == 0,
                "server.client_body_timeout_ms",
                no_timeout,
            ),
            (
                server.max_connections == 0,
                "server.max_connections",
                "must be at least 1",
            ),
            (
                self.http.max_header_bytes < 1024,
                "http.max_header_bytes",
                "must be at least 1024",
            ),
            (
                !(1..=3600).contains(&tokens.access_ttl_seconds),
                "tokens.access_ttl_seconds",
                "must be between 1 and 3600",
            ),
            (
                tokens.key_refresh_seconds > 86_400,
                "tokens.key_refresh_seconds",
                "must be at most 86400 (a day)",
            ),
            (
                tokens.refresh_reuse_grace_seconds > 300,
                "tokens.refresh_reuse_grace_seconds",
                "must be at most 300: a longer grace window is reuse detection turned off",
            ),
            (
                tokens.leeway_seconds > 300,
                "tokens.leeway_seconds",
                "must be at most 300: it lengthens every token's life",
            ),
            (
                self.auth.email_verification_ttl_seconds == 0
                    || self.auth.password_reset_ttl_seconds == 0
                    || self.auth.invitation_ttl_seconds == 0
                    || self.auth.passwordless.ttl_seconds == 0,
                "auth",
                "email_verification_ttl_seconds, password_reset_ttl_seconds, invitation_ttl_seconds \
                 and passwordless.ttl_seconds must be positive (a link dead on arrival)",
            ),
            (
                !(1..=10).contains(&self.auth.passwordless.max_code_attempts),
                "auth.passwordless.max_code_attempts",
                "must be 1 to 10 (a 6-digit code)",
            ),
            (
                self.auth.mfa.challenge_max_attempts > 10,
                "auth.mfa.challenge_max_attempts",
                "must be at most 10 (a 6-digit code)",
            ),
            (
                self.cache.command_timeout_ms == 0,
                "cache.command_timeout_ms",
                no_timeout,
            ),
            (
                self.janitor.interval_seconds == 0,
                "janitor.interval_seconds",
                "must be positive",
            ),
            (
                server.shutdown_timeout_seconds == 0,
                "server.shutdown_timeout_seconds",
                "must be positive: in-flight requests need time to finish",
            ),
            (
                server.workers > 1024,
                "server.workers",
                "must be at most 1024",
            ),
            (
                mail.smtp_port == 0,
                "mail.smtp_port",
                "must be a port (1 to 65535)",
            ),
            (
                !log_filter_is_valid(&self.log.level),
                "log.level",
                "must be a level (trace, debug, info, warn, error, off) or directives such as \
                 `authd=debug,info`: a bare word that is no level would silence every log",
            ),
            (
                tokens.refresh_ttl_seconds < tokens.access_ttl_seconds,
                "tokens.refresh_ttl_seconds",
                "must not be shorter than tokens.access_ttl_seconds",
            ),
            (
                tokens.refresh_ttl_seconds > MAX_COOKIE_LIFETIME_SECONDS,
                "tokens.refresh_ttl_seconds",
                "must be at most 34560000 (400 days: browsers keep no cookie longer)",
            ),
            (
                tokens.issuer.is_empty(),
                "tokens.issuer",
                "must not be empty",
            ),
            (
                tokens.audience.is_empty(),
                "tokens.audience",
                "must not be empty",
            ),
            (
                hasher.argon2_parallelism == 0 || hasher.argon2_iterations == 0,
                "hasher",
                "argon2_iterations and argon2_parallelism must be at least 1",
            ),
            (
                self.auth.link_mails_per_address == 0 || self.auth.link_mail_window_seconds == 0,
                "auth.link_mails_per_address",
                "link_mails_per_address and link_mail_window_seconds must be at least 1",
            ),
            (
                hasher.max_queue_wait_ms < 10,
                "hasher.max_queue_wait_ms",
                "must be at least 10",
            ),
            (
                !(0..=19).contains(&hasher.thread_nice),
                "hasher.thread_nice",
                "must be 0 to 19",
            ),
            (
                hasher.argon2_memory_kib < hasher.argon2_parallelism.saturating_mul(8),
                "hasher.argon2_memory_kib",
                "must be at least 8 x argon2_parallelism",
            ),
            (
                zero_limit.is_some(),
                zero_limit.unwrap_or("rate_limit"),
                limit_rule,
            ),
            (
                !(1..=128).contains(&limits.ipv6_prefix_length),
                "rate_limit.ipv6_prefix_length",
                "must be between 1 and 128",
            ),
            (
                mail.from.parse::<lettre::message::Mailbox>().is_err(),
                "mail.from",
                "must be an address, optionally with a name: Name <a@b.c>",
            ),
            (
                mail.batch_size == 0 || mail.max_attempts == 0 || mail.poll_interval_ms == 0,
                "mail",
                "batch_size, max_attempts and poll_interval_ms must be positive",
            ),
            (
                tokens.session_max_lifetime_seconds < tokens.access_ttl_seconds,
                "tokens.session_max_lifetime_seconds",
                "must not be shorter than tokens.access_ttl_seconds",
            ),
            (
                !(1..=86_400).contains(&self.oauth.flow_ttl_seconds),
                "oauth.flow_ttl_seconds",
                "must be 1 to 86400 (a sign-in's round trip, an issued nonce, a link offer)",
            ),
            (
                tokens.session_max_lifetime_seconds > MAX_SESSION_LIFETIME_SECONDS,
                "tokens.session_max_lifetime_seconds",
                "must be at most 315360000 (ten years)",
            ),
            (
                self.janitor.batch_size == 0,
                "janitor.batch_size",
                "must be positive",
            ),
            (
                self.auth.password_min_score > 4,
                "auth.password_min_score",
                "must be between 0 and 4",
            ),
            (
                self.auth.mfa.totp_skew_steps > 2,
                "auth.mfa.totp_skew_steps",
                "must be 0 to 2",
            ),
            (
                self.auth.mfa.challenge_max_attempts == 0
                    || self.auth.mfa.challenge_ttl_seconds == 0
                    || self.auth.mfa.enrolment_ttl_seconds == 0,
                "auth.mfa",
                "challenge_max_attempts, challenge_ttl_seconds and enrolment_ttl_seconds must be positive",
            ),
            (
                self.auth.reauthentication_seconds == 0,
                "auth.reauthentication_seconds",
                "must be positive",
            ),
            (
                lockout.enabled && lockout.threshold == 0,
                "auth.lockout.threshold",
                "must be positive",
            ),
            (
                lockout.enabled && lockout.base_delay_seconds == 0,
                "auth.lockout.base_delay_seconds",
                "must be positive",
            ),
            (
                lockout.enabled && lockout.max_delay_seconds < lockout.base_delay_seconds,
                "auth.lockout.max_delay_seconds",
                "must not be shorter than base_delay_seconds",
            ),
            (
                self.http.max_body_bytes == 0,
                "http.max_body_bytes",
                "must be positive",
            ),
            (
                webhooks.poll_interval_ms == 0
                    || webhooks.batch_size == 0
                    || webhooks.max_concurrency == 0
                    || webhooks.max_attempts == 0
                    || webhooks.backoff_base_seconds == 0,
                "webhooks",
                "poll_interval_ms, batch_size, max_concurrency, max_attempts and backoff_base_seconds must be positive",
            ),
            (
                webhooks.request_timeout_ms == 0,
                "webhooks.request_timeout_ms",
                no_timeout,
            ),
            (
                webhooks.backoff_max_seconds < webhooks.backoff_base_seconds,
                "webhooks.backoff_max_seconds",
                "must not be shorter than backoff_base_seconds",
            ),
        ];
        rules
            .into_iter()
            .find(|(broken, ..)| *broken)
            .map(|(_, setting, rule)| (setting, rule))
    }

    /// Each of `webhooks.endpoints`: a target the policy allows, a Standard Webhooks secret, and
    /// event kinds written as kinds are (whether each is an audit event kind is checked at start,
    /// where the kinds are known).
    fn check_webhook_endpoints(&self) -> Result<(), ConfigError> {
        let proxy = self.webhooks.proxy_url.as_str().trim();
        if !proxy.is_empty() {
            let parsed =
                url::Url::parse(proxy).map_err(|e| invalid("webhooks.proxy_url", e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(invalid(
                    "webhooks.proxy_url",
                    "must be an http:// or https:// URL with a host",
                ));
            }
        }
        let policy = self.webhooks.target_policy();
        for (index, endpoint) in self.webhooks.endpoints.iter().enumerate() {
            let setting = |key: &str| format!("webhooks.endpoints[{index}].{key}");
            policy
                .check_url(&endpoint.url)
                .map_err(|e| invalid(&setting("url"), e))?;
            let repeated = self.webhooks.endpoints[..index]
                .iter()
                .any(|earlier| earlier.url.trim() == endpoint.url.trim());
            if repeated {
                return Err(invalid(
                    &setting("url"),
                    "is listed twice (one endpoint per URL; list every kind it receives)",
                ));
            }
            crate::domain::webhooks::SigningSecret::parse(endpoint.secret.expose())
                .map_err(|e| invalid(&setting("secret"), e))?;
            let kind_like = |kind: &String| {
                kind == crate::domain::webhooks::ALL_EVENTS
                    || (!kind.is_empty()
                        && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            };
            if endpoint.events.is_empty() || !endpoint.events.iter().all(kind_like) {
                return Err(invalid(
                    &setting("events"),
                    "must list audit event kinds (e.g. \"login_failed\"), or \"*\"",
                ));
            }
        }
        Ok(())
    }

    /// Production answers browsers and mails links over TLS: plain http (and a cookie without
    /// `Secure`, SMTP credentials in the clear) only where it never leaves the machine.
    fn check_production_transport(&self) -> Result<(), ConfigError> {
        let local = is_loopback_url(&self.app.frontend_url);
        if is_plain_http(&self.app.frontend_url) && !local {
            return Err(invalid(
                "app.frontend_url",
                "must be https:// in production: mailed links and the passkey origin follow it \
                 (http:// only for localhost)",
            ));
        }
        if !self.cookie_secure() && !local {
            return Err(invalid(
                "tokens.cookie_secure",
                "cannot be false in production: the refresh cookie would travel over plain http \
                 (only with a localhost app.frontend_url)",
            ));
        }
        let plain = |origin: &String| is_plain_http(origin) && !is_loopback_url(origin);
        if self.cors_origins().iter().any(plain) {
            return Err(invalid(
                "http.cors_allowed_origins",
                "must be https:// origins in production (http:// only for localhost)",
            ));
        }
        if self.auth.passkeys.origins.iter().any(plain) {
            return Err(invalid(
                "auth.passkeys.origins",
                "must be https:// origins in production (http:// only for localhost)",
            ));
        }
        let mail = &self.mail;
        let remote_smtp = !mail.smtp_host.is_empty() && !is_loopback_host(&mail.smtp_host);
        if mail.smtp_tls == SmtpTls::None && remote_smtp && !mail.smtp_username.is_empty() {
            return Err(invalid(
                "mail.smtp_tls",
                "cannot be none with credentials to another host in production: the password \
                 would cross the network in the clear (use starttls or tls)",
            ));
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
        if self.environment == Environment::Production && is_placeholder(secret.expose()) {
            return Err(invalid(
                setting,
                format!(
                    "is a placeholder or a value published with authd (docker-compose.yml, \
                     config/test.toml), refused in production (set {variable})"
                ),
            ));
        }
        if !self.is_development() && !looks_random(secret.expose()) {
            return Err(invalid(
                setting,
                format!(
                    "looks made by hand (fewer than {MIN_DISTINCT_SECRET_BYTES} different \
                     characters), refused outside development: generate one, e.g. \
                     `openssl rand -base64 48` (set {variable})"
                ),
            ));
        }
        Ok(())
    }
}

/// Words of the placeholders and published values that ship with authd (`replace-me-...` in
/// docker-compose.yml, `test-only-...` in config/test.toml, `dev-only-...-change-me-...`): a
/// secret holding one is known to whoever reads the repository.
const PLACEHOLDER_WORDS: [&str; 6] = [
    "replace-me",
    "change-me",
    "changeme",
    "test-only",
    "dev-only",
    "placeholder",
];

fn is_placeholder(secret: &str) -> bool {
    let secret = secret.to_ascii_lowercase();
    PLACEHOLDER_WORDS.iter().any(|word| secret.contains(word))
}

/// Whether `filter`, as authd hands it to `tracing_subscriber::EnvFilter` (trimmed, see
/// [`log_directives`]), parses and names no bare word that is not a level: such a word
/// would read as a target enabled at every level, leaving everything else off.
fn log_filter_is_valid(filter: &str) -> bool {
    const LEVELS: [&str; 12] = [
        "trace", "debug", "info", "warn", "error", "off", "0", "1", "2", "3", "4", "5",
    ];
    let directives = log_directives(filter);
    let is_level = |word: &str| LEVELS.contains(&word.to_ascii_lowercase().as_str());
    !filter.trim().is_empty()
        && directives
            .split(',')
            .filter(|d| !d.contains('='))
            .all(is_level)
        && tracing_subscriber::EnvFilter::try_new(directives).is_ok()
}

/// Whether `url` is `http://` (whatever its case or surrounding spaces).
fn is_plain_http(url: &str) -> bool {
    url::Url::parse(url.trim()).is_ok_and(|url| url.scheme() == "http")
}

/// Whether `url`'s host is this machine (`localhost` or a loopback address).
fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url.trim())
        .ok()
        .and_then(|url| url.host_str().map(is_loopback_host))
        .unwrap_or(false)
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
