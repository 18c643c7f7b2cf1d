//! PostgreSQL backend: tokio-postgres through a deadpool pool, statements prepared once per
//! connection, migrations embedded from `sql/postgres/`.

mod events;
mod keys;
mod maintenance;
mod mfa;
mod migrate;
mod one_time;
mod outbox;
mod passkeys;
mod sessions;
mod users;

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

use super::{MaintenanceStore, StoreError};
use crate::config::DatabaseSettings;

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
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let pg_config = pg_config(settings)?;
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
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

    /// A pooled connection with `sql` prepared on it (each connection prepares a statement once).
    async fn prepared(&self, sql: &str) -> Result<(Object, Statement), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok((client, statement))
    }

    async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let (client, statement) = self.prepared(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    /// The first row, if any: for statements that select or return at most one.
    async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Exactly one row, for aggregates (`count`, `EXISTS`) that always answer one.
    async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("no row from {sql:?}")))
    }

    /// Runs one statement; answers how many rows it changed.
    async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let (client, statement) = self.prepared(sql).await?;
        Ok(client.execute(&statement, params).await?)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => {
                StoreError::Unavailable("no database connection available in time".into())
            }
            PoolError::Backend(e) => unavailable(e),
            other => StoreError::Unavailable(other.to_string()),
        })
    }
}

fn pg_config(settings: &DatabaseSettings) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = settings
        .url
        .as_str()
        .parse()
        .map_err(|e| StoreError::Backend(format!("database.url: {e}")))?;
    config.connect_timeout(Duration::from_secs(settings.connect_timeout_seconds));
    config.application_name("authd");
    Ok(config)
}

pub(super) fn unavailable(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn ttl(seconds: u64) -> f64 {
    seconds as f64
}

/// Connection-level failures are retryable (503); statement failures are not. The server says
/// "retry later" with codes too: class 08 (connection exception), 53 (insufficient resources:
/// too many connections, out of memory or disk) and 57P0x (shutting down, starting up, crash
/// recovery), met while PostgreSQL restarts.
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let retryable_code = e.code().is_some_and(|code| {
            let code = code.code();
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
        });
        if e.is_closed() || retryable_code || (e.as_db_error().is_none() && e.code().is_none()) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}
