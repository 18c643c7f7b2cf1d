//! PostgreSQL backend: tokio-postgres through a deadpool pool, statements prepared once per
//! connection, migrations embedded from `sql/postgres/`.

mod ceremonies;
mod email_logins;
mod events;
mod identities;
mod keys;
mod maintenance;
mod mfa;
mod migrate;
mod one_time;
mod outbox;
mod passkeys;
mod sessions;
mod users;
mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{
    GenericClient, Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError,
    RecyclingMethod, Runtime,
};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{NoTls, Row};

use super::{MaintenanceStore, StoreError, StoreResult};
use crate::config::DatabaseSettings;
use crate::domain::user::Role;

/// Statement parameters, as tokio-postgres takes them.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

const USER_COLUMNS: &str = "id, email, name, role, email_verified, locked, created_at, updated_at";

#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl super::Store for PostgresStore {}

impl PostgresStore {
    /// Builds the pool and checks that one connection can be made.
    pub async fn connect(settings: &DatabaseSettings) -> StoreResult<Self> {
        let pg_config = pg_config(settings, Use::Requests)?;
        let bound = settings.statement_timeout_ms.saturating_add(1_000);
        ANSWER_BOUND_MS.fetch_max(bound, Ordering::Relaxed);
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // PostgreSQL cancels a statement stuck on a lock or a slow disk. Set on each new
        // connection rather than as a startup option, which a pooler such as PgBouncer refuses.
        let set_timeout = format!("SET statement_timeout = {}", settings.statement_timeout_ms);
        let pool = Pool::builder(manager)
            .post_create(Hook::async_fn(move |client, _| {
                let set_timeout = set_timeout.clone();
                Box::pin(async move {
                    client
                        .simple_query(&set_timeout)
                        .await
                        .map(|_| ())
                        .map_err(HookError::Backend)
                })
            }))
            .max_size(settings.pool_size)
            .wait_timeout(Some(Duration::from_secs(settings.acquire_timeout_seconds)))
            .create_timeout(Some(Duration::from_secs(settings.connect_timeout_seconds)))
            .recycle_timeout(Some(Duration::from_secs(settings.connect_timeout_seconds)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let store = PostgresStore { pool };
        store.ping().await?;
        Ok(store)
    }

    async fn query(&self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        query(&self.client().await?, sql, params).await
    }

    /// The first row, if any: for statements that select or return at most one.
    async fn query_opt(&self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        query_opt(&self.client().await?, sql, params).await
    }

    /// Exactly one row, for aggregates (`count`, `EXISTS`) that always answer one.
    async fn query_one(&self, sql: &str, params: Params<'_>) -> StoreResult<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("no row from {sql:?}")))
    }

    /// Runs one statement; answers how many rows it changed.
    async fn execute(&self, sql: &str, params: Params<'_>) -> StoreResult<u64> {
        execute(&self.client().await?, sql, params).await
    }

    /// A pooled connection. For a while after a wait for PostgreSQL ran out, each one is checked
    /// first (an empty query, answered at once by a live connection): the connection that
    /// waited went back to the pool and may be wedged behind a stalled proxy that keeps it open.
    /// One that does not answer is taken out of the pool and closed.
    async fn client(&self) -> StoreResult<Object> {
        let client = self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => {
                StoreError::Unavailable("no database connection available in time".into())
            }
            PoolError::Backend(e) => unavailable(e),
            other => StoreError::Unavailable(other.to_string()),
        })?;
        if unix_millis() >= CHECK_CONNECTIONS_UNTIL_MS.load(Ordering::Relaxed) {
            return Ok(client);
        }
        match tokio::time::timeout(CONNECTION_CHECK, client.simple_query("")).await {
            Ok(Ok(_)) => Ok(client),
            _ => {
                drop(Object::take(client));
                Err(StoreError::Unavailable(
                    "a database connection stopped answering; it was closed".into(),
                ))
            }
        }
    }
}

/// Until when (Unix milliseconds) pooled connections are checked before use: a minute past the
/// last wait for PostgreSQL that ran out.
static CHECK_CONNECTIONS_UNTIL_MS: AtomicU64 = AtomicU64::new(0);
const CHECK_CONNECTIONS_FOR_MS: u64 = 60_000;
/// How long a live connection may take to answer an empty query.
const CONNECTION_CHECK: Duration = Duration::from_secs(1);

fn unix_millis() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Holds the user's row until the transaction ends, so that changes to one user which read then
/// write (enrolment's two steps; removing a way in while another is removed) queue behind each
/// other instead of each passing a check the other is about to make false (READ COMMITTED).
pub(super) async fn lock_user(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: &uuid::Uuid,
) -> StoreResult<()> {
    let lock = "SELECT 1 FROM users WHERE id = $1 FOR UPDATE";
    bounded(async { Ok(tx.execute(lock, &[user_id]).await?) }).await?;
    Ok(())
}

/// Holds the user's row (see [`lock_user`]) and goes on only while their session `session_id`
/// lives: otherwise [`StoreError::SessionEnded`]. An ending of every session of the user, a lock
/// and a deletion update that row first, so each has committed before the second statement
/// reads the session (a fresh snapshot under READ COMMITTED) or waits for this transaction.
pub(super) async fn lock_user_for_session(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: &uuid::Uuid,
    session_id: &uuid::Uuid,
) -> StoreResult<()> {
    lock_user(tx, user_id).await?;
    let live = "SELECT EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
                               WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL
                                 AND s.expires_at > now()
                                 AND u.deleted_at IS NULL AND NOT u.locked)";
    if exists(tx, live, &[session_id, user_id]).await? {
        Ok(())
    } else {
        Err(StoreError::SessionEnded)
    }
}

/// Whether `sql`, a `SELECT EXISTS (...)`, finds a row.
async fn exists(client: &impl GenericClient, sql: &str, params: Params<'_>) -> StoreResult<bool> {
    bounded(async {
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query_one(&statement, params).await?.try_get(0)?)
    })
    .await
}

/// Runs one statement on a connection or in a transaction, prepared once per connection; answers
/// how many rows it changed.
async fn execute(client: &impl GenericClient, sql: &str, params: Params<'_>) -> StoreResult<u64> {
    bounded(async {
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await?)
    })
    .await
}

async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> StoreResult<Vec<Row>> {
    bounded(async {
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    })
    .await
}

/// The statement that counts one attempt at a single-use code of `table` (the row whose `key` is
/// `$1`), only while the code is unused, unexpired and under `$2` attempts; it answers
/// `returning`, or no row when the code cannot be tried.
fn attempt_statement(table: &str, key: &str, returning: &str) -> String {
    format!(
        "UPDATE {table} SET attempts = attempts + 1
         WHERE {key} = $1 AND consumed_at IS NULL AND expires_at > now() AND attempts < $2
         RETURNING {returning}"
    )
}

/// The first row, if any.
async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> StoreResult<Option<Row>> {
    Ok(query(client, sql, params).await?.into_iter().next())
}

/// Reads a column by name (what `record!` calls).
trait Columns {
    fn column<'a, T: FromSql<'a>>(&'a self, name: &str) -> StoreResult<T>;
}

impl Columns for Row {
    fn column<'a, T: FromSql<'a>>(&'a self, name: &str) -> StoreResult<T> {
        Ok(self.try_get(name)?)
    }
}

/// Roles are stored as their names.
impl<'a> FromSql<'a> for Role {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let name = <&str as FromSql>::from_sql(ty, raw)?;
        Role::parse(name).ok_or_else(|| format!("unknown role {name:?}").into())
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// The connection settings of `database.url`, bounded by the connect timeout. Connections that
/// serve requests (`Use::Requests`) also carry `database.statement_timeout_ms` as their TCP user
/// timeout (unacknowledged data: the server or the network is gone) and keepalive probes (an
/// idle connection to a vanished server is closed, not handed out); PostgreSQL's own
/// `statement_timeout` is set on each new connection (see `connect`). Migrations are not bounded.
fn pg_config(settings: &DatabaseSettings, purpose: Use) -> StoreResult<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = settings
        .url
        .as_str()
        .parse()
        .map_err(|e| StoreError::Backend(format!("database.url: {e}")))?;
    config.connect_timeout(Duration::from_secs(settings.connect_timeout_seconds));
    config.application_name("authd");
    if purpose == Use::Requests {
        let bound = Duration::from_millis(settings.statement_timeout_ms);
        config.tcp_user_timeout(bound);
        config.keepalives(true);
        config.keepalives_idle(bound);
    }
    Ok(config)
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Requests,
    Migrations,
}

/// How long authd waits for any answer from PostgreSQL on a request's connection: the largest
/// `database.statement_timeout_ms` of the stores this process opened (one, outside tests), plus
/// a second for PostgreSQL's own cancellation to arrive first. What waits longer gets
/// `Unavailable` (503): the server, a pooler in between or the network stopped answering.
static ANSWER_BOUND_MS: AtomicU64 = AtomicU64::new(0);

fn answer_bound() -> Duration {
    Duration::from_millis(ANSWER_BOUND_MS.load(Ordering::Relaxed).max(1_000))
}

/// Waits for `work` on the database no longer than [`answer_bound`].
async fn bounded<T>(work: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    match tokio::time::timeout(answer_bound(), work).await {
        Ok(done) => done,
        Err(_) => {
            let until = unix_millis().saturating_add(CHECK_CONNECTIONS_FOR_MS);
            CHECK_CONNECTIONS_UNTIL_MS.fetch_max(until, Ordering::Relaxed);
            Err(StoreError::Unavailable(format!(
                "PostgreSQL did not answer within {} ms",
                answer_bound().as_millis()
            )))
        }
    }
}

/// Begins a transaction on `client`, bounded like a statement.
async fn begin(client: &mut Object) -> StoreResult<deadpool_postgres::Transaction<'_>> {
    bounded(async { Ok(client.transaction().await?) }).await
}

/// Commits `tx`, bounded like a statement.
async fn commit(tx: deadpool_postgres::Transaction<'_>) -> StoreResult<()> {
    bounded(async { Ok(tx.commit().await?) }).await
}

pub(super) fn unavailable(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(described(&e))
}

/// The error with the server's own message when it sent one (`database "x" does not exist`,
/// `role "y" does not exist`), which tokio-postgres shows only as `db error`. The message names
/// objects, never values (those are in its detail, left out).
fn described(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {}", db.message()),
        None => e.to_string(),
    }
}

fn ttl(seconds: u64) -> f64 {
    seconds as f64
}

/// Connection-level failures are retryable (503); statement failures are not. The server says
/// "retry later" with codes too: class 08 (connection exception), 53 (insufficient resources:
/// too many connections, out of memory or disk) and 57P0x (shutting down, starting up, crash
/// recovery), met while PostgreSQL restarts; and a statement PostgreSQL cancelled for outliving
/// `database.statement_timeout_ms`.
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let retryable_code = e.code().is_some_and(|code| {
            let code = code.code();
            // 57014: cancelled by `statement_timeout` (database.statement_timeout_ms).
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "57014"
        });
        if e.is_closed() || retryable_code || (e.as_db_error().is_none() && e.code().is_none()) {
            StoreError::Unavailable(described(&e))
        } else {
            StoreError::Backend(described(&e))
        }
    }
}
