use std::path::{Path, PathBuf};

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
const GOOD_KEK: &str = "a-production-key-encryption-key-of-enough-length";

fn production_vars(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![
        ("DATABASE_URL", "postgres://u:p@db:5432/authd"),
        ("REDIS_URL", "redis://cache:6379/0"),
        ("JWT_SECRET", GOOD_JWT),
        ("AUTHD__TOKENS__REFRESH_SECRET", GOOD_REFRESH),
        ("AUTHD__TOKENS__KEY_ENCRYPTION_KEY", GOOD_KEK),
    ];
    all.extend_from_slice(extra);
    vars(&all)
}

/// Why production refuses to start with `extra` on top of good settings.
fn production_refusal(extra: &[(&str, &str)]) -> String {
    load_from(&dir(), Environment::Production, &production_vars(extra))
        .unwrap_err()
        .to_string()
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
fn a_providers_lists_come_from_comma_separated_variables() {
    let settings = load_from(
        &dir(),
        Environment::Production,
        &production_vars(&[
            (
                "AUTHD__OAUTH__CALLBACK_BASE_URL",
                "https://auth.example.com",
            ),
            ("AUTHD__OAUTH__PROVIDERS__CORP__KIND", "oidc"),
            ("AUTHD__OAUTH__PROVIDERS__CORP__CLIENT_ID", "authd"),
            ("AUTHD__OAUTH__PROVIDERS__CORP__CLIENT_SECRET", GOOD_REFRESH),
            (
                "AUTHD__OAUTH__PROVIDERS__CORP__ISSUER",
                "https://id.example.com",
            ),
            (
                "AUTHD__OAUTH__PROVIDERS__CORP__SCOPES",
                "openid,email,groups",
            ),
            (
                "AUTHD__OAUTH__PROVIDERS__CORP__NATIVE_CLIENT_IDS",
                "ios-app,android-app",
            ),
        ]),
    )
    .expect("loads");
    let corp = &settings.oauth.providers["corp"];
    assert_eq!(corp.scopes, ["openid", "email", "groups"]);
    assert_eq!(corp.native_client_ids, ["ios-app", "android-app"]);
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
            (
                "AUTHD__OAUTH__ALLOWED_RETURN_URLS",
                "https://a.example.com/app,https://b.example.com",
            ),
            ("AUTHD__AUTH__PASSKEYS__ORIGINS", "https://a.example.com"),
        ]),
    )
    .expect("loads");
    assert_eq!(
        settings.oauth.allowed_return_urls,
        ["https://a.example.com/app", "https://b.example.com"]
    );
    assert_eq!(settings.auth.passkeys.origins, ["https://a.example.com"]);
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

/// A short secret, a misspelt key, a wildcard or a path in the CORS origins: each stops the
/// start with a line that names the setting.
#[test]
fn bad_settings_stop_the_start_naming_the_setting() {
    let cors = "AUTHD__HTTP__CORS_ALLOWED_ORIGINS";
    let cases = [
        (
            ("JWT_SECRET", "short"),
            "tokens.jwt_secret: must be at least 32 bytes",
        ),
        (
            ("AUTHD__TOKENS__ACESS_TTL_SECONDS", "60"),
            "acess_ttl_seconds",
        ),
        ((cors, "*"), "http.cors_allowed_origins"),
        (
            (cors, "https://app.example/login"),
            "http.cors_allowed_origins",
        ),
        ((cors, "app.example"), "http.cors_allowed_origins"),
        ((cors, "https://"), "http.cors_allowed_origins"),
        (
            ("AUTHD__TOKENS__REFRESH_TTL_SECONDS", "18446744073709551615"),
            "tokens.refresh_ttl_seconds: must be at most 34560000",
        ),
        (
            ("AUTHD__TOKENS__SESSION_MAX_LIFETIME_SECONDS", "315360001"),
            "tokens.session_max_lifetime_seconds: must be at most",
        ),
        (
            ("AUTHD__OAUTH__FLOW_TTL_SECONDS", "0"),
            "oauth.flow_ttl_seconds: must be 1 to 86400",
        ),
        // 8 x parallelism overflowed (found by the property test below): named, not a panic.
        (
            ("AUTHD__HASHER__ARGON2_PARALLELISM", "4294967295"),
            "hasher.argon2_memory_kib",
        ),
    ];
    for (setting, named) in cases {
        let err = production_refusal(&[setting]);
        assert!(err.contains(named), "{setting:?}: {err}");
    }
}

#[test]
fn cors_origins_are_normalised() {
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
}

#[test]
fn redacted_output_hides_secrets_and_url_passwords() {
    let settings = load_from(
        &dir(),
        Environment::Production,
        &production_vars(&[(
            "AUTHD__WEBHOOKS__PROXY_URL",
            "http://egress:hunter2@proxy.internal:3128",
        )]),
    )
    .expect("loads");
    let mut settings = settings;
    settings.webhooks.endpoints.push(WebhookEndpointSettings {
        url: "https://hooks.example.com/in?token=receiver-token".into(),
        secret: Secret::new("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"),
        events: vec!["*".into()],
        description: String::new(),
    });
    let text = settings.redacted_toml();
    assert!(!text.contains("receiver-token"), "{text}");
    assert!(text.contains("https://hooks.example.com/***"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("http://egress:***@proxy.internal:3128"),
        "{text}"
    );
    assert!(!text.contains(GOOD_JWT));
    assert!(!text.contains(GOOD_REFRESH));
    assert!(!text.contains("u:p@"), "{text}");
    assert!(text.contains("postgres://u:***@db:5432/authd"), "{text}");
    assert!(text.contains("[redacted]"));
}

#[test]
fn every_form_of_a_secret_in_a_connection_url_is_redacted() {
    for (url, shown) in [
        (
            "postgres://u:pw@db:5432/authd",
            "postgres://u:***@db:5432/authd",
        ),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "http://tok3n@proxy.internal:3128",
            "http://***@proxy.internal:3128/",
        ),
        (
            "postgres://db/authd?user=u&password=pw&sslmode=require",
            "postgres://db/authd?user=u&password=***&sslmode=require",
        ),
        ("redis://cache:6379", "redis://cache:6379"),
        ("not a url with pw", "***"),
        ("", ""),
    ] {
        assert_eq!(ConnectionUrl::new(url).redacted(), shown, "{url}");
    }
}

#[test]
fn the_reference_covers_exactly_the_settings_struct() {
    fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value.as_object() {
            // A map of named entries (`oauth.providers`), empty by default, is one setting.
            Some(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&key, v, out);
                }
            }
            _ => out.push(prefix.to_string()),
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

#[test]
fn a_required_second_factor_needs_one_to_enrol_and_reads_from_the_environment() {
    let settings = load_from(
        &dir(),
        Environment::Production,
        &production_vars(&[("AUTHD__AUTH__MFA__REQUIRED", "admins")]),
    )
    .expect("loads");
    assert_eq!(
        settings.auth.mfa.required,
        crate::domain::assurance::MfaRequirement::Admins
    );
    let line = production_refusal(&[
        ("AUTHD__AUTH__MFA__REQUIRED", "everyone"),
        ("AUTHD__AUTH__MFA__TOTP_ENABLED", "false"),
        ("AUTHD__AUTH__PASSKEYS__ENABLED", "false"),
    ]);
    assert!(line.contains("auth.mfa.required"), "{line}");
    let line = production_refusal(&[("AUTHD__AUTH__MFA__REQUIRED", "sometimes")]);
    assert!(line.contains("required"), "{line}");
}

#[test]
fn hand_made_secrets_are_refused_outside_development() {
    assert!(!looks_random(&"a".repeat(40)));
    assert!(!looks_random(&"abcabc".repeat(8)));
    assert!(looks_random(
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    ));
    let refusal = production_refusal(&[("JWT_SECRET", &"a".repeat(40))]);
    assert!(refusal.contains("looks made by hand"), "{refusal}");
}

#[test]
fn a_file_that_does_not_parse_is_named_without_its_lines() {
    let dir = std::env::temp_dir().join(format!("authd-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    std::fs::copy(shipped, dir.join("default.toml")).unwrap();
    let broken = "[tokens]\njwt_secret = \"MySecretInToml-0123456789-abcdefghij-typo\n";
    std::fs::write(dir.join("development.toml"), broken).unwrap();
    let error = load_from(&dir, Environment::Development, &[]).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    let message = error.to_string();
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("development.toml"), "{message}");
    assert!(!message.contains("MySecretInToml"), "{message}");
}

#[test]
fn production_refuses_plain_transport_and_published_secrets() {
    let https = ("FRONTEND_URL", "https://app.example.com");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("FRONTEND_URL", "http://app.example.com")],
            "app.frontend_url",
        ),
        (
            &[https, ("AUTHD__TOKENS__COOKIE_SECURE", "false")],
            "tokens.cookie_secure",
        ),
        (
            &[
                https,
                ("AUTHD__HTTP__CORS_ALLOWED_ORIGINS", "http://evil.example"),
            ],
            "http.cors_allowed_origins",
        ),
        (
            &[
                https,
                ("AUTHD__MAIL__SMTP_HOST", "smtp.example.com"),
                ("AUTHD__MAIL__SMTP_TLS", "none"),
                ("AUTHD__MAIL__SMTP_USERNAME", "u"),
                ("AUTHD__MAIL__SMTP_PASSWORD", "x"),
            ],
            "mail.smtp_tls",
        ),
        (
            &[
                https,
                (
                    "JWT_SECRET",
                    "replace-me-with-a-random-secret-of-32-bytes-or-more",
                ),
            ],
            "placeholder",
        ),
        (
            &[
                https,
                (
                    "AUTHD__TOKENS__KEY_ENCRYPTION_KEY",
                    "test-only-key-encryption-key-0123456789abcdef",
                ),
            ],
            "placeholder",
        ),
        (&[https, ("AUTHD__LOG__LEVEL", "verbose")], "log.level"),
        (
            &[
                https,
                (
                    "AUTHD__HTTP__CORS_ALLOWED_ORIGINS",
                    "https://a.example, HTTP://b.example",
                ),
            ],
            "http.cors_allowed_origins",
        ),
        (
            &[
                https,
                ("AUTHD__HTTP__CORS_ALLOWED_ORIGINS", "https://*.example.com"),
            ],
            "patterns are not supported",
        ),
        (
            &[https, ("AUTHD__TOKENS__KEY_ENCRYPTION_KEY", GOOD_JWT)],
            "must differ from tokens.jwt_secret",
        ),
    ];
    for &(extra, named) in cases {
        let refusal = production_refusal(extra);
        assert!(refusal.contains(named), "{extra:?}: {refusal}");
    }
    // A stack on one machine (docker-compose.yml's defaults) may use plain http.
    let local = [
        ("FRONTEND_URL", "http://localhost:3000"),
        ("AUTHD__TOKENS__COOKIE_SECURE", "false"),
        ("AUTHD__MAIL__SMTP_HOST", "127.0.0.1"),
        ("AUTHD__MAIL__SMTP_TLS", "none"),
    ];
    load_from(&dir(), Environment::Production, &production_vars(&local)).expect("loads");
    let filters = [
        "authd=debug,info",
        "warn",
        "info,tokio_postgres=debug",
        "authd=debug, info",
        "authd::flows=debug,info",
    ];
    for filter in filters {
        let vars = production_vars(&[("AUTHD__LOG__LEVEL", filter)]);
        load_from(&dir(), Environment::Production, &vars).expect(filter);
    }
}
