//! Logs through `tracing`: JSON in production, pretty in development. `RUST_LOG` overrides the
//! configured level.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

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

/// `requested`'s directives, trimmed (EnvFilter reads ` info` as a target, not a level), and
/// then: refinery logs a debug dump of every migration, SQL text included, at info (authd logs
/// each migration it applies itself), so it speaks only of problems unless named; the
/// [`QUIET_DEPENDENCIES`] are held at info when the default level would let their debug lines
/// through.
pub fn directives(requested: &str) -> String {
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

#[cfg(test)]
mod tests {
    use tracing::subscriber::with_default;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    use super::*;

    /// Whether a filter built from `requested` lets through an event at `level` of `target`.
    fn logs(requested: &str, target: &'static str, level: tracing::Level) -> bool {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let filter = EnvFilter::try_new(directives(requested)).unwrap();
        let flag = seen.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                std::io::sink()
            })
            .with_filter(filter);
        let subscriber = tracing_subscriber::registry().with(layer);
        with_default(subscriber, || match (target, level) {
            ("tokio_postgres::query", tracing::Level::DEBUG) => {
                tracing::debug!(target: "tokio_postgres::query", "executing statement")
            }
            ("authd", tracing::Level::DEBUG) => tracing::debug!(target: "authd", "a step"),
            ("authd", tracing::Level::INFO) => tracing::info!(target: "authd", "a step"),
            ("hyper_util", tracing::Level::INFO) => tracing::info!(target: "hyper_util", "x"),
            _ => unreachable!(),
        });
        seen.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn a_verbose_level_leaves_the_dependencies_that_log_secrets_at_info() {
        use tracing::Level;
        assert!(!logs("trace", "tokio_postgres::query", Level::DEBUG));
        assert!(!logs(
            "debug, tokio_postgres::connection=warn",
            "tokio_postgres::query",
            Level::DEBUG
        ));
        assert!(logs("debug", "authd", Level::DEBUG));
        assert!(logs("authd=debug, info", "authd", Level::DEBUG));
        assert!(logs("authd=debug, info", "authd", Level::INFO));
        // Named, the operator decides; a quiet default is not raised to info.
        assert!(logs(
            "debug,tokio_postgres=debug",
            "tokio_postgres::query",
            Level::DEBUG
        ));
        assert!(!logs("warn", "hyper_util", Level::INFO));
        assert!(!logs("off", "hyper_util", Level::INFO));
    }
}
