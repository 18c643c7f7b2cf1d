//! Assembly: connect the store and the cache, start the actors, bind the listener.

use std::net::TcpListener;
use std::sync::Arc;

use actix::Actor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use crate::actors::deferred::{Deferred, Drain};
use crate::actors::hasher::HasherPool;
use crate::actors::janitor::Janitor;
use crate::actors::mailer::Mailer;
use crate::actors::rate_limiter::RateLimiter;
use crate::actors::tokens::{TokenActor, TokenService};
use crate::actors::webhooks::WebhookDispatcher;
use crate::actors::Flush;
use crate::actors::Tracked;
use crate::cache::memory::MemoryCache;
use crate::cache::redis::RedisCache;
use crate::cache::{Cache, RateRule};
use crate::config::{Settings, StoreBackend};
use crate::domain::assurance::StepUpRule;
use crate::flows::account::AccountService;
use crate::flows::admin::AdminService;
use crate::flows::audit::Audit;
use crate::flows::auth::{AuthService, SignupRules};
use crate::flows::deps::{FlowDeps, PasswordRules, StepUpPolicy};
use crate::flows::email_links::{EmailLinkService, PasswordlessRules};
use crate::flows::federation::{FederationRules, FederationService};
use crate::flows::mfa::{MfaRules, MfaService};
use crate::flows::outbox::{Outbox, FOLLOW_UP_LIFETIME};
use crate::flows::webhooks::WebhookService;
use crate::http::client_ip::TrustedProxies;
use crate::http::cookies::CookiePolicy;
use crate::http::{self, AppState};
use crate::keys::KeySource;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use std::time::Duration;

pub struct Application {
    port: u16,
    server: Server,
    hasher: HasherPool,
    mailer: actix::Addr<Mailer>,
    webhooks: Option<actix::Addr<WebhookDispatcher>>,
    deferred: actix::Addr<Deferred>,
    shutdown_timeout: Duration,
}

/// Opens the configured store, applying pending migrations first when `migrate` is set (creating
/// a PostgreSQL database first when `database.create_if_missing`). Returns the migrations applied.
pub async fn open_store(
    settings: &Settings,
    migrate: bool,
) -> anyhow::Result<(Arc<dyn Store>, Vec<String>)> {
    let database = &settings.database;
    match settings.store_backend()? {
        StoreBackend::Postgres => {
            let mut applied = Vec::new();
            if migrate {
                if database.create_if_missing
                    && PostgresStore::create_database_if_missing(database)
                        .await
                        .with_context(|| {
                            format!(
                                "database.url: cannot reach {} to create the database if it is \
                                 missing (database.create_if_missing)",
                                database.url.redacted()
                            )
                        })?
                {
                    tracing::info!("created database {}", database.url.redacted());
                }
                applied = PostgresStore::migrate(database)
                    .await
                    .context("database migration")?;
            } else {
                PostgresStore::check_schema(database)
                    .await
                    .context("database schema")?;
            }
            let store = PostgresStore::connect(database).await.with_context(|| {
                format!(
                    "database.url: cannot connect to {}",
                    database.url.redacted()
                )
            })?;
            Ok((Arc::new(store), applied))
        }
        StoreBackend::Sqlite(path) => {
            let store = SqliteStore::open(path.as_deref())
                .await
                .context("database: cannot open the SQLite database")?;
            let applied = if migrate {
                store.migrate().await.context("database migration")?
            } else {
                store.check_schema().await.context("database schema")?;
                Vec::new()
            };
            Ok((Arc::new(store), applied))
        }
    }
}

/// Connects to Redis when `cache.url` is set, else keeps the state in this process.
pub async fn open_cache(settings: &Settings) -> anyhow::Result<Arc<dyn Cache>> {
    if !settings.cache_is_shared() {
        return Ok(Arc::new(MemoryCache::new()));
    }
    let cache = RedisCache::connect(&settings.cache)
        .await
        .with_context(|| {
            format!(
                "cache.url: cannot connect to {}",
                settings.cache.url.redacted()
            )
        })?;
    Ok(Arc::new(cache))
}

fn describe_cache(settings: &Settings) -> String {
    if settings.cache_is_shared() {
        format!(
            "redis {} (prefix {:?})",
            settings.cache.url.redacted(),
            settings.cache.key_prefix
        )
    } else {
        "in-process, single node".into()
    }
}

impl Application {
    /// Connects, migrates if configured, starts the actors and binds. Needs a running actix System.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let backend = settings.store_backend()?;
        let (store, applied) = open_store(&settings, settings.database.auto_migrate).await?;
        for name in applied {
            tracing::info!(migration = %name, "applied migration");
        }
        let cache = open_cache(&settings).await?;
        tracing::info!(
            "store: {}; cache: {}",
            backend.describe(&settings.database),
            describe_cache(&settings)
        );
        if backend == StoreBackend::Postgres && !settings.cache_is_shared() {
            tracing::warn!(
                "PostgreSQL with an in-process cache: rate limits and login throttling are per process, \
                 so they do not hold across nodes; run a single node or set REDIS_URL"
            );
        }
        let hasher = HasherPool::start(&settings.hasher).map_err(anyhow::Error::msg)?;
        let stats = hasher.stats();

        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "server.port: cannot listen on {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        tracing::info!(
            "hasher: {} workers, queue {}, argon2id m={} KiB t={} p={}; listening on {}:{}",
            stats.workers,
            stats.capacity - stats.workers,
            settings.hasher.argon2_memory_kib,
            settings.hasher.argon2_iterations,
            settings.hasher.argon2_parallelism,
            settings.server.host,
            port,
        );

        // Each token actor owns a copy of this ring and keeps it fresh from the same source.
        let keys = KeySource::new(store.clone(), settings.tokens.clone());
        let ring = Arc::new(
            keys.initial_ring()
                .await
                .map_err(|e| anyhow::anyhow!("tokens: {e}"))?,
        );
        let current_kid = ring.current().kid.clone();
        tracing::info!(
            algorithm = settings.tokens.algorithm.name(),
            kid = %current_kid,
            "access tokens signed"
        );
        // One dispatcher per process, like the mailer: it drains the shared webhook queue. The
        // configuration's endpoints are stored before it can send anything.
        let webhooks = if settings.webhooks.enabled {
            let dispatcher = WebhookDispatcher::new(
                store.clone(),
                settings.webhooks.clone(),
                settings.tokens.key_encryption_key.clone(),
            )
            .map_err(anyhow::Error::msg)?;
            crate::flows::webhooks::sync_configured(
                store.as_ref(),
                &settings.webhooks.endpoints,
                &settings.tokens.key_encryption_key,
            )
            .await
            .map_err(anyhow::Error::msg)?;
            tracing::info!(
                "webhooks: on, {} configured endpoints, up to {} requests at once",
                settings.webhooks.endpoints.len(),
                settings.webhooks.max_concurrency
            );
            Some(dispatcher.start())
        } else {
            None
        };
        let audit = Audit::new(store.clone(), webhooks.clone());
        let webhook_service = WebhookService::new(
            store.clone(),
            audit.clone(),
            webhooks.clone(),
            &settings.webhooks,
            settings.tokens.key_encryption_key.clone(),
        );
        let token_service = Arc::new(TokenService::new(store.clone(), settings.tokens.clone()));
        let rate_limits = Arc::new(settings.rate_limit.clone());
        let lockout = settings
            .auth
            .lockout
            .enabled
            .then(|| settings.auth.lockout.policy());
        let allow_email_reuse_after_delete = settings.auth.allow_email_reuse_after_delete;
        let signup_rules = SignupRules {
            require_email_verification: settings.auth.require_email_verification,
        };
        // One mailer per process: it owns the SMTP transport and drains the shared outbox.
        let mailer = Mailer::new(store.clone(), settings.mail.clone())
            .map_err(anyhow::Error::msg)?
            .start();
        tracing::info!("mail: {}", Mailer::describe(&settings.mail));
        // On this (the main) arbiter, which outlives the HTTP workers at shutdown.
        let deferred = Deferred::new().start();
        if settings.janitor.enabled {
            Janitor::new(store.clone(), settings.janitor.clone()).start();
        }
        let outbox = Outbox::new(store.clone(), mailer.clone(), &settings);
        let password_rules = Arc::new(PasswordRules {
            min_score: settings.auth.password_min_score,
            app_name: settings.auth.app_name.clone(),
            breaches: crate::breach::BreachChecker::new(&settings.auth.breached_passwords)
                .map_err(anyhow::Error::msg)?,
        });
        let step_up = StepUpPolicy {
            rule: StepUpRule {
                window_seconds: settings.auth.reauthentication_seconds,
            },
            admin_actions: settings.auth.admin_reauthentication,
        };
        let mfa_rules = Arc::new(MfaRules {
            settings: settings.auth.mfa.clone(),
            key_encryption_key: settings.tokens.key_encryption_key.clone(),
            issuer: settings.auth.app_name.clone(),
            webauthn: settings.webauthn()?.map(Arc::new),
            passkey_ceremony_ttl_seconds: settings.auth.passkeys.ceremony_ttl_seconds,
            decoy_key: settings.tokens.refresh_secret.clone(),
        });
        let providers = Arc::new(
            crate::federation::Providers::from_settings(&settings).map_err(anyhow::Error::msg)?,
        );
        let federation_rules = Arc::new(FederationRules {
            return_urls: settings.return_urls()?,
            allow_signup: settings.oauth.allow_signup,
            flow_ttl_seconds: settings.oauth.flow_ttl_seconds,
            native_nonces: settings.oauth.native_nonces,
            require_email_verification: settings.auth.require_email_verification,
        });
        let passwordless = Arc::new(PasswordlessRules {
            settings: settings.auth.passwordless.clone(),
            code_key: settings.tokens.refresh_secret.clone(),
        });
        let link_mails = RateRule {
            max: settings.auth.link_mails_per_address,
            window: Duration::from_secs(settings.auth.link_mail_window_seconds),
        };
        let base_path = settings.base_path();
        let cookie_policy = CookiePolicy {
            secure: settings.cookie_secure(),
            path: format!("{base_path}/auth"),
            max_age_seconds: settings.tokens.refresh_ttl_seconds as i64,
        };
        let one_time_cookie = CookiePolicy {
            max_age_seconds: FOLLOW_UP_LIFETIME.as_secs() as i64,
            ..cookie_policy.clone()
        };
        let oauth_cookie = CookiePolicy {
            path: format!("{base_path}/auth/oauth"),
            ..cookie_policy.clone()
        };
        let link_cookie = CookiePolicy {
            path: format!("{base_path}/me/identities"),
            ..cookie_policy.clone()
        };
        let oauth_flow_ttl_seconds = i64::try_from(settings.oauth.flow_ttl_seconds).unwrap_or(600);
        let max_body_bytes = settings.http.max_body_bytes;
        let trusted_proxies = Arc::new(TrustedProxies::new(
            settings.trusted_proxies()?,
            settings.http.forwarded_header,
        ));
        let metrics_networks: Option<Arc<[ipnet::IpNet]>> = settings
            .metrics
            .enabled
            .then(|| settings.metrics_networks().map(Arc::from))
            .transpose()?;
        if metrics_networks.is_some() {
            crate::metrics::handle();
        }
        // Made once: the document is the same for every worker.
        let api_document = settings
            .http
            .docs_enabled
            .then(|| http::openapi::document(&base_path));
        let settings = Arc::new(settings);
        let pool = hasher.clone();

        let server_settings = settings.clone();
        let worker_deferred = deferred.clone();
        let server = HttpServer::new(move || {
            // One token actor and one rate-limit actor per HTTP worker thread: their messages
            // never cross threads, and their state is shared through the store and the cache.
            let tokens = Tracked::new(
                TokenActor::new(token_service.clone(), keys.clone(), ring.clone()).start(),
                "tokens",
            );
            let rate_limiter = Tracked::new(
                RateLimiter::new(cache.clone(), rate_limits.clone(), lockout).start(),
                "rate_limiter",
            );
            let deps = FlowDeps {
                store: store.clone(),
                deferred: worker_deferred.clone(),
                hasher: pool.clone(),
                tokens,
                limiter: rate_limiter.clone(),
                outbox: outbox.clone(),
                audit: audit.clone(),
                password_rules: password_rules.clone(),
                step_up,
                allow_email_reuse_after_delete,
                link_mails,
            };
            let mfa = MfaService::new(deps.clone(), mfa_rules.clone());
            let federation = FederationService::new(
                deps.clone(),
                mfa.clone(),
                providers.clone(),
                federation_rules.clone(),
            );
            let state = AppState {
                federation,
                webhooks: webhook_service.clone(),
                oauth_cookie: oauth_cookie.clone(),
                link_cookie: link_cookie.clone(),
                oauth_flow_ttl_seconds,
                account: AccountService::new(deps.clone()),
                admin: AdminService::new(deps.clone()),
                email_links: EmailLinkService::new(deps.clone(), mfa.clone(), passwordless.clone()),
                auth: AuthService::new(deps, signup_rules, mfa.clone()),
                mfa,
                mfa_requirement: server_settings.auth.mfa.required,
                rate_limiter,
                store: store.clone(),
                cache: cache.clone(),
                cookies: cookie_policy.clone(),
                one_time_cookie: one_time_cookie.clone(),
                base_path: base_path.clone(),
                max_body_bytes,
                max_header_bytes: server_settings.http.max_header_bytes,
                body_timeout: server_settings.server.client_body_timeout(),
                trusted_proxies: trusted_proxies.clone(),
                hasher: pool.clone(),
                metrics_networks: metrics_networks.clone(),
            };
            App::new()
                .app_data(web::Data::new(state))
                .app_data(web::PayloadConfig::new(max_body_bytes))
                .wrap(from_fn(http::middleware::rate_limit))
                .wrap(from_fn(http::middleware::refuse_cross_site_without_origin))
                .wrap(from_fn(http::middleware::refuse_oversized_headers))
                .wrap(http::cors(&server_settings))
                .wrap(from_fn(http::middleware::request_context))
                // Before the API's scope, which (with an empty base path) would take every path.
                .configure(http::operations(&base_path, api_document.clone()))
                .configure(http::register(&base_path))
                .default_service(web::to(http::no_route))
        })
        .workers(if settings.server.workers == 0 {
            crate::config::available_cores()
        } else {
            settings.server.workers
        })
        .shutdown_timeout(settings.server.shutdown_timeout_seconds)
        // Slow clients: every wait on a client is bounded (see `http::connections`).
        .keep_alive(settings.server.keep_alive())
        .client_request_timeout(settings.server.client_request_timeout())
        .client_disconnect_timeout(settings.server.client_disconnect_timeout())
        .max_connections(settings.server.max_connections)
        .on_connect(http::connections::watch(
            settings.server.keep_alive().unwrap_or_default()
                + settings.server.client_request_timeout(),
        ))
        .listen(listener)?
        .run();

        Ok(Application {
            port,
            server,
            hasher,
            mailer,
            webhooks,
            deferred,
            shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout_seconds),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The hasher pool, whose counters stay readable after the server is spawned.
    pub fn hasher(&self) -> HasherPool {
        self.hasher.clone()
    }

    /// A handle that stops the server (gracefully or not).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM, Ctrl-C or a handle): the server stops accepting and gives
    /// in-flight requests (and the hasher jobs they wait for) `server.shutdown_timeout_seconds`;
    /// then the mailer finishes its batch and sends what is due, and the webhook dispatcher
    /// finishes the deliveries in flight, each within the same bound.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        // Work promised in answers (mail for a known address) is done before the mail is flushed.
        match tokio::time::timeout(self.shutdown_timeout, self.deferred.send(Drain)).await {
            Ok(_) => {}
            Err(_) => tracing::warn!("shutdown: deferred work still running at the timeout"),
        }
        match tokio::time::timeout(self.shutdown_timeout, self.mailer.send(Flush)).await {
            Ok(Ok(())) => tracing::info!("shutdown: mail outbox flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "shutdown: the mailer is gone"),
            Err(_) => tracing::warn!(
                "shutdown: mail still sending at the timeout; it stays in the outbox"
            ),
        }
        if let Some(webhooks) = &self.webhooks {
            match tokio::time::timeout(self.shutdown_timeout, webhooks.send(Flush)).await {
                Ok(Ok(())) => tracing::info!("shutdown: webhook deliveries in flight finished"),
                Ok(Err(e)) => tracing::warn!(error = %e, "shutdown: the webhook dispatcher is gone"),
                Err(_) => tracing::warn!(
                    "shutdown: webhooks still sending at the timeout; they are sent again after their lease"
                ),
            }
        }
        served
    }
}
