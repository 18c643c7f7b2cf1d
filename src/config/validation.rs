//! Every check made before authd starts: secrets, URLs, networks, ranges, combinations.

use super::*;

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
}
