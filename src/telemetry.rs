//! Logs through `tracing`: JSON in production, pretty in development. `RUST_LOG` overrides the
//! configured level.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

/// Dependencies whose debug output carries what authd never logs: tokio-postgres prints every
/// statement's parameters (queued mails with their links and codes, password hashes), lettre
/// the messages it sends, the HTTP clients the URLs and headers of webhook and provider calls.
/// They log at `info` at most, whatever the level, unless the filter names them.
const QUIET_DEPENDENCIES: [&str; 7] = [
    "tokio_postgres",
    "lettre",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

pub fn init(settings: &Settings) {
    let requested = std::env::var("RUST_LOG").unwrap_or_else(|_| settings.log.level.clone());
    let filter = EnvFilter::try_new(directives(&requested))
        .unwrap_or_else(|_| EnvFilter::new(directives(&settings.log.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests) keeps the first subscriber.
    let _ = match settings.log_format() {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The filter for `requested`: refinery logs a debug dump of every migration, SQL text
/// included, at info (authd logs each migration it applies itself), so it speaks only of
/// problems; the [`QUIET_DEPENDENCIES`] stay at info unless `requested` names them.
fn directives(requested: &str) -> String {
    let mut directives = format!("{requested},refinery_core=warn");
    for target in QUIET_DEPENDENCIES {
        if !requested.contains(target) {
            directives.push_str(&format!(",{target}=info"));
        }
    }
    directives
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verbose_level_leaves_the_dependencies_that_log_secrets_at_info() {
        let filter = directives("trace");
        assert!(filter.starts_with("trace,"));
        assert!(filter.contains("tokio_postgres=info") && filter.contains("lettre=info"));
        let named = directives("debug,tokio_postgres=debug");
        assert!(!named.contains("tokio_postgres=info"), "{named}");
        assert!(EnvFilter::try_new(directives("authd=debug,info")).is_ok());
    }
}
