//! What the benches share: settings from the repository's config (development: example secrets),
//! a store (in-memory SQLite, or a fresh PostgreSQL database), a seeded user, and the token
//! actor as the HTTP workers run it, on an actix system the benches block on.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, SystemRunner};
use authd::actors::tokens::{IssuedTokens, StartSession, TokenActor, TokenService};
use authd::config::{self, Environment, Settings};
use authd::domain::assurance::AuthMethods;
use authd::domain::jwt_algorithm::JwtAlgorithm;
use authd::domain::user::Role;
use authd::keys::{KeyRing, KeySource};
use authd::store::postgres::PostgresStore;
use authd::store::sqlite::SqliteStore;
use authd::store::Store;
use criterion::Criterion;
use uuid::Uuid;

/// Runs one bench with the settings every bench here shares, `measurement` long per case, and
/// the command line's options: what `criterion_group!` and `criterion_main!` would write.
pub fn run(measurement: Duration, bench: fn(&mut Criterion)) {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measurement)
        .sample_size(30)
        .configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}

/// An actix system (a current-thread tokio runtime underneath) to block on: actors, the
/// PostgreSQL pool's connections and the benches' futures all run on it.
pub fn runtime() -> SystemRunner {
    actix::System::new()
}

/// The development settings (example secrets), with `algorithm` for access tokens.
pub fn settings(algorithm: JwtAlgorithm) -> Settings {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings =
        config::load_from(&dir, Environment::Development, &[]).expect("config/ loads");
    settings.tokens.algorithm = algorithm;
    settings
}

pub async fn sqlite_memory() -> Arc<dyn Store> {
    let store = SqliteStore::open(None).await.expect("in-memory SQLite");
    store.migrate().await.expect("migrations");
    Arc::new(store)
}

/// A fresh database on the PostgreSQL server of `DATABASE_URL` (any database on it), migrated;
/// `None` when `DATABASE_URL` is unset. Drop it with [`drop_postgres`].
pub async fn postgres(settings: &mut Settings) -> Option<(Arc<dyn Store>, String)> {
    let server = std::env::var("DATABASE_URL").ok()?;
    let (base, _) = server.rsplit_once('/')?;
    let name = format!("authd_bench_{}", Uuid::new_v4().simple());
    settings.database.url = config::ConnectionUrl::new(format!("{base}/{name}"));
    PostgresStore::create_database_if_missing(&settings.database)
        .await
        .expect("create the bench database");
    PostgresStore::migrate(&settings.database)
        .await
        .expect("migrations");
    let store = PostgresStore::connect(&settings.database)
        .await
        .expect("connect");
    Some((Arc::new(store), format!("{base}/postgres")))
}

pub async fn drop_postgres(admin_url: &str, database_url: &str) {
    let name = database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .expect("drop the bench database");
    drop(client);
    let _ = driver.await;
}

/// Creates one account through the import path (no hashing) and answers its id.
pub async fn seed_user(store: &dyn Store) -> Uuid {
    let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
    let line = format!(
        r#"{{"email":"{email}","passwordHash":"$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie"}}"#
    );
    let report = authd::flows::import::import_users(store, line.as_bytes(), false)
        .await
        .expect("import");
    assert_eq!(report.imported, 1, "{report:?}");
    store
        .user_by_email(&authd::domain::email::CanonicalEmail::of(&email))
        .await
        .expect("lookup")
        .expect("the imported user")
        .user
        .id
}

/// The token flows as a worker has them: the store side, the key ring, and an actor owning it.
pub struct Tokens {
    pub service: Arc<TokenService>,
    pub ring: Arc<KeyRing>,
    pub actor: Addr<TokenActor>,
}

/// Call from inside the system (`rt.block_on`): the actor starts on it.
pub async fn tokens(store: Arc<dyn Store>, settings: &Settings) -> Tokens {
    let keys = KeySource::new(store.clone(), settings.tokens.clone());
    let ring = Arc::new(keys.initial_ring().await.expect("signing keys"));
    let service = Arc::new(TokenService::new(store, settings.tokens.clone()));
    let actor = TokenActor::new(service.clone(), keys, ring.clone()).start();
    Tokens {
        service,
        ring,
        actor,
    }
}

pub async fn start_session(tokens: &Tokens, user_id: Uuid) -> IssuedTokens {
    tokens
        .actor
        .send(StartSession {
            user_id,
            role: Role::User,
            user_agent: Some("bench".into()),
            ip: Some("127.0.0.1".into()),
            methods: AuthMethods::password(),
            epoch: None,
        })
        .await
        .expect("the actor answers")
        .expect("session")
        .expect("an ungated session starts")
}
