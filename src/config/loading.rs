//! The layers: `config/default.toml`, the environment's file, the seed apps' plain variables,
//! then `AUTHD__SECTION__KEY` variables; and which setting to blame when one does not parse.

use std::path::{Path, PathBuf};

use super::reference::{reference_entries, SEED_VARIABLES};
use super::{invalid, ConfigError, Environment, Settings};

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

/// Settings whose variable holds a comma-separated list.
const LIST_KEYS: [&str; 6] = [
    "http.cors_allowed_origins",
    "http.trusted_proxies",
    "rate_limit.auth_routes",
    "metrics.allowed_networks",
    "auth.passkeys.origins",
    "oauth.allowed_return_urls",
];

/// The list a provider's variable fills (`AUTHD__OAUTH__PROVIDERS__CORP__SCOPES` is
/// `oauth.providers.corp.scopes`), if it is one.
fn provider_list_key(variable: &str) -> Option<String> {
    let key = setting_of(variable)?;
    let name = key.strip_prefix("oauth.providers.")?;
    let (_, field) = name.split_once('.')?;
    matches!(field, "scopes" | "native_client_ids").then_some(key)
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

    // Comma-separated lists in variables: the fixed keys, and those under a provider's own name,
    // which only the variables themselves say.
    let mut environment_source = config::Environment::with_prefix("AUTHD")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",");
    for key in LIST_KEYS
        .iter()
        .map(|key| key.to_string())
        .chain(prefixed.keys().filter_map(|name| provider_list_key(name)))
    {
        environment_source = environment_source.with_list_parse_key(&key);
    }

    let built = config::Config::builder()
        .add_source(config::File::from(dir.join("default.toml")).required(true))
        .add_source(
            config::File::from(dir.join(format!("{}.toml", environment.as_str()))).required(false),
        )
        .add_source(seed)
        .add_source(environment_source.source(Some(prefixed)))
        .build()
        .map_err(|e| ConfigError::Load(without_quoted_source(&e.to_string())))?;

    built
        .try_deserialize()
        .map_err(|e| ConfigError::Load(e.to_string()))
}

/// A parse error without the lines of the file it quotes (`2 | jwt_secret = "..."`): the line
/// at fault may be a secret's, and the message goes to deploy and container logs. The position
/// and the file are kept.
fn without_quoted_source(message: &str) -> String {
    let quoted = |line: &str| {
        let line = line.trim_start();
        line.starts_with('|')
            || line
                .split_once('|')
                .is_some_and(|(number, _)| number.trim().parse::<u64>().is_ok())
    };
    message
        .lines()
        .filter(|line| !quoted(line))
        .collect::<Vec<_>>()
        .join("\n")
}
