//! SQLite backend, the embedded default: one connection owned by a dedicated thread
//! (tokio-rusqlite), so SQLite's blocking calls never run on an async thread and every write is
//! serialised without `SQLITE_BUSY`. WAL journal, foreign keys on, migrations from `sql/sqlite/`.
//! Times are stored as Unix microseconds (UTC).

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

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::Row;
use uuid::Uuid;

use super::{StoreError, StoreResult};
use crate::domain::user::Role;

const USER_COLUMNS: &str = "id, email, name, role, email_verified, locked, created_at, updated_at";

#[derive(Clone)]
pub struct SqliteStore {
    connection: tokio_rusqlite::Connection,
}

impl super::Store for SqliteStore {}

/// A statement parameter: text (ids, reasons) or an integer (times in microseconds).
fn text(value: impl ToString) -> rusqlite::types::Value {
    rusqlite::types::Value::Text(value.to_string())
}

fn now_value() -> rusqlite::types::Value {
    rusqlite::types::Value::Integer(now_micros())
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn seconds_to_micros(seconds: u64) -> i64 {
    i64::try_from(seconds)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000)
}

/// A page cursor (creation time, id) as the two statement values it is compared with.
fn cursor_values(cursor: Option<(DateTime<Utc>, Uuid)>) -> (Option<i64>, Option<String>) {
    cursor
        .map(|(time, id)| (time.timestamp_micros(), id.to_string()))
        .unzip()
}

fn is_unique_violation(e: &tokio_rusqlite::Error) -> bool {
    matches!(
        e,
        tokio_rusqlite::Error::Rusqlite(rusqlite::Error::SqliteFailure(failure, _))
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// A value read from the database that does not fit its type (a corrupt row).
fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_string(), rusqlite::types::Type::Text)
}

fn uuid_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(index)?;
    text.parse().map_err(|_| corrupt("uuid"))
}

fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(row.get(index)?).ok_or_else(|| corrupt("timestamp"))
}

fn role_from(text: &str) -> rusqlite::Result<Role> {
    Role::parse(text).ok_or_else(|| corrupt("role"))
}

impl SqliteStore {
    /// Runs `function` on the connection's thread.
    async fn call<F, R>(&self, function: F) -> StoreResult<R>
    where
        F: FnOnce(&mut rusqlite::Connection) -> Result<R, tokio_rusqlite::Error> + Send + 'static,
        R: Send + 'static,
    {
        Ok(self.connection.call(function).await?)
    }

    /// Runs one statement on the connection's thread; answers how many rows it changed.
    async fn execute(
        &self,
        sql: &'static str,
        values: Vec<rusqlite::types::Value>,
    ) -> StoreResult<usize> {
        self.call(move |c| {
            Ok(c.prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(values))?)
        })
        .await
    }

    /// Opens (creating it and its directory if needed) the database file, or an in-memory one.
    pub async fn open(path: Option<&Path>) -> StoreResult<Self> {
        let connection = match path {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Unavailable(format!("creating {}: {e}", dir.display()))
                    })?;
                }
                tokio_rusqlite::Connection::open(path).await
            }
            None => tokio_rusqlite::Connection::open_in_memory().await,
        }?;
        connection
            .call(|c| {
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "NORMAL")?;
                c.pragma_update(None, "foreign_keys", "ON")?;
                c.pragma_update(None, "busy_timeout", 5000)?;
                Ok(())
            })
            .await?;
        Ok(SqliteStore { connection })
    }
}

impl From<tokio_rusqlite::Error> for StoreError {
    fn from(e: tokio_rusqlite::Error) -> Self {
        match e {
            tokio_rusqlite::Error::ConnectionClosed => {
                StoreError::Unavailable("the SQLite connection is closed".into())
            }
            other => StoreError::Backend(other.to_string()),
        }
    }
}
