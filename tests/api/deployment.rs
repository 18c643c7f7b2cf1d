//! The shipped deployment files agree with the settings authd reads: every variable that
//! docker-compose.yml and the Dockerfile set is one authd knows, and together they load into
//! valid production settings.

use std::path::Path;

use authd::config::{self, Environment, SEED_VARIABLES};
use serde_yaml::Value;

/// Variables authd reads besides the settings themselves.
const PROCESS_VARIABLES: &[&str] = &["AUTHD_ENV", "NODE_ENV", "AUTHD_CONFIG_DIR", "RUST_LOG"];

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `${NAME:-default}` as Compose would expand it with `NAME` unset.
fn compose_default(value: &str) -> String {
    match value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        Some(inner) => inner
            .split_once(":-")
            .map(|(_, default)| default.to_string())
            .unwrap_or_default(),
        None => value.to_string(),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("unexpected environment value {other:?}"),
    }
}

/// The `ENV` variables of the Dockerfile's final stage.
fn dockerfile_env() -> Vec<(String, String)> {
    let dockerfile = repo_file("Dockerfile");
    let final_stage = dockerfile
        .rsplit("\nFROM ")
        .next()
        .expect("a final stage")
        .replace("\\\n", " ");
    final_stage
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ENV "))
        .flat_map(|assignments| {
            assignments
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The authd services of docker-compose.yml and their environments (anchors merged), with the
/// secrets an operator sets (its header asks for them; its placeholders are refused, below).
fn compose_authd_services() -> Vec<(String, Vec<(String, String)>)> {
    let operator_set = |name: &str| match name {
        "JWT_SECRET" => Some("Kq3vN8xZ2pL7rT1wY6uB4mC9sD5fG0hJ-operator"),
        "AUTHD__TOKENS__REFRESH_SECRET" => Some("Xy7Rt2Lp9Qw4Zm6Nb1Vc8Kd3Hs5Jf0Ga-operator"),
        "AUTHD__TOKENS__KEY_ENCRYPTION_KEY" => Some("Pm4Wq8Er2Ty6Ui0Op3As7Df1Gh5Jk9Lz-operator"),
        _ => None,
    };
    compose_authd_services_as_shipped()
        .into_iter()
        .map(|(service, vars)| {
            let vars = vars
                .into_iter()
                .map(|(name, value)| {
                    let value = operator_set(&name).map_or(value, str::to_string);
                    (name, value)
                })
                .collect();
            (service, vars)
        })
        .collect()
}

/// The authd services of docker-compose.yml and their environments (anchors merged), as the
/// file has them when no variable is set.
fn compose_authd_services_as_shipped() -> Vec<(String, Vec<(String, String)>)> {
    let mut compose: Value = serde_yaml::from_str(&repo_file("docker-compose.yml")).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().expect("services");
    services
        .iter()
        .filter(|(_, service)| service.get("build").is_some())
        .map(|(name, service)| {
            let mut environment = service["environment"].clone();
            environment.apply_merge().unwrap();
            let vars = environment
                .as_mapping()
                .expect("environment as a mapping")
                .iter()
                .map(|(k, v)| (scalar(k), compose_default(&scalar(v))))
                .collect();
            (scalar(name), vars)
        })
        .collect()
}

/// `docker compose up` without the secrets set: the placeholders are public, and production
/// refuses them, naming the variable to set.
#[test]
fn the_compose_placeholder_secrets_are_refused_in_production() {
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for (service, vars) in compose_authd_services_as_shipped() {
        let error = config::load_from(&config_dir, Environment::Production, &vars)
            .err()
            .unwrap_or_else(|| panic!("{service}: the placeholders were accepted"));
        let line = error.to_string();
        assert!(line.contains("placeholder"), "{service}: {line}");
    }
}

#[test]
fn compose_and_dockerfile_set_only_variables_authd_reads_and_they_load() {
    let services = compose_authd_services();
    assert!(services.len() >= 2, "two authd replicas: {services:?}");
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for (service, environment) in services {
        let mut vars = dockerfile_env();
        vars.extend(environment);
        for (name, _) in &vars {
            let known = name.starts_with("AUTHD__")
                || PROCESS_VARIABLES.contains(&name.as_str())
                || SEED_VARIABLES.iter().any(|(seed, _)| seed == name);
            assert!(known, "{service}: authd does not read {name}");
        }
        let environment = vars
            .iter()
            .find(|(name, _)| name == "AUTHD_ENV")
            .map(|(_, value)| Environment::parse(value).unwrap())
            .unwrap_or(Environment::Development);
        // Unknown AUTHD__ keys fail here: the settings deny unknown fields.
        let settings = config::load_from(&config_dir, environment, &vars)
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        assert!(
            settings.database.url.as_str().starts_with("postgres://"),
            "{service}"
        );
        assert!(
            settings.cache_is_shared(),
            "{service}: replicas share Redis"
        );
        assert_eq!(settings.server.host, "0.0.0.0", "{service}");
        assert!(
            !settings.mail.smtp_host.is_empty(),
            "{service}: mail catcher"
        );
        assert!(!settings.trusted_proxies().unwrap().is_empty(), "{service}");
    }
}

#[test]
fn the_nginx_config_routes_to_every_replica() {
    let nginx = repo_file("deploy/nginx.conf");
    for (service, _) in compose_authd_services() {
        assert!(
            nginx.contains(&format!("server {service}:8080")),
            "{service} missing from nginx upstream"
        );
    }
}

/// The shipped proxy overwrites the one forwarding header authd reads from it and strips the
/// other, so no address a client wrote reaches authd (authd ignores the other header too).
#[test]
fn the_nginx_config_overwrites_the_header_authd_reads_and_strips_the_other() {
    let nginx = repo_file("deploy/nginx.conf");
    let directives: Vec<String> = nginx
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim().to_string())
        .filter(|line| line.starts_with("proxy_set_header"))
        .collect();
    let set = |header: &str| {
        directives
            .iter()
            .find(|d| d.split_whitespace().nth(1) == Some(header))
            .map(|d| d.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
    };
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for (service, vars) in compose_authd_services() {
        let settings = config::load_from(&config_dir, Environment::Production, &vars)
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        let (read, other) = match settings.http.forwarded_header {
            config::ForwardedHeader::XForwardedFor => ("X-Forwarded-For", "Forwarded"),
            config::ForwardedHeader::Forwarded => ("Forwarded", "X-Forwarded-For"),
        };
        let value = set(read).unwrap_or_else(|| panic!("nginx does not set {read}"));
        assert!(
            value == "$remote_addr;" || value == "\"for=$remote_addr\";",
            "{read} must be overwritten with the peer address, not appended to: {value}"
        );
        assert_eq!(
            set(other).as_deref(),
            Some("\"\";"),
            "nginx must strip a client's {other}"
        );
    }
}
