//! Logs through `tracing`: JSON in production, pretty in development. `RUST_LOG` overrides the
//! configured level.

use tracing_subscriber::EnvFilter;

use crate::config::{log_directives as directives, LogFormat, Settings};

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
