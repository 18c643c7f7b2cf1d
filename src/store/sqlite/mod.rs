//! SQLite backend, the embedded default: one connection owned by a dedicated thread
//! (tokio-rusqlite), so SQLite's blocking calls never run on an async thread and every write is
//! serialised without `SQLITE_BUSY`. WAL journal, foreign keys on, migrations from `sql/sqlite/`.
//! Times are stored as Unix microseconds (UTC).

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

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, Value, ValueRef};
use rusqlite::{OptionalExtension, Row, Transaction, TransactionBehavior};
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
fn text(value: impl ToString) -> Value {
    Value::Text(value.to_string())
}

fn now_value() -> Value {
    Value::Integer(now_micros())
}

/// A time `seconds` from now, as stored.
fn micros_from_now(seconds: u64) -> Value {
    Value::Integer(now_micros().saturating_add(seconds_to_micros(seconds)))
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

/// Whether `user_id`'s session `session_id` lives: not revoked nor expired, the user neither
/// locked nor deleted (what [`StoreError::SessionEnded`] guards).
fn session_lives(tx: &Transaction<'_>, user_id: Uuid, session_id: Uuid) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
                        WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL
                          AND s.expires_at > ?3 AND u.deleted_at IS NULL AND NOT u.locked)",
    )?
    .query_row(
        rusqlite::params![session_id.to_string(), user_id.to_string(), now_micros()],
        |row| row.get(0),
    )
}

/// A value read from the database that does not fit its type (a corrupt row).
fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_string(), rusqlite::types::Type::Text)
}

/// Reads a column by name (what `record!` calls), as authd stores it in SQLite.
trait Columns {
    fn column<T: Column>(&self, name: &str) -> rusqlite::Result<T>;
}

impl Columns for Row<'_> {
    fn column<T: Column>(&self, name: &str) -> rusqlite::Result<T> {
        let value = self.get_ref(name)?;
        T::from_column(value).map_err(|_| {
            let index = self.as_ref().column_index(name).unwrap_or_default();
            rusqlite::Error::InvalidColumnType(index, name.to_string(), value.data_type())
        })
    }
}

/// A value as authd stores it in SQLite: ids and roles as text, times as Unix microseconds (UTC).
trait Column: Sized {
    fn from_column(value: ValueRef<'_>) -> FromSqlResult<Self>;
}

macro_rules! stored_as_is {
    ($($type:ty),+) => {
        $(impl Column for $type {
            fn from_column(value: ValueRef<'_>) -> FromSqlResult<Self> {
                <$type as FromSql>::column_result(value)
            }
        })+
    };
}

stored_as_is!(String, bool, i64, Vec<u8>);

impl Column for Uuid {
    fn from_column(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl Column for DateTime<Utc> {
    fn from_column(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let micros = value.as_i64()?;
        DateTime::from_timestamp_micros(micros).ok_or(FromSqlError::OutOfRange(micros))
    }
}

impl Column for Role {
    fn from_column(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Role::parse(value.as_str()?).ok_or(FromSqlError::InvalidType)
    }
}

impl<T: Column> Column for Option<T> {
    fn from_column(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Null => Ok(None),
            value => T::from_column(value).map(Some),
        }
    }
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
    async fn execute(&self, sql: &'static str, values: Vec<Value>) -> StoreResult<usize> {
        self.call(move |c| {
            Ok(c.prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(values))?)
        })
        .await
    }

    /// The first row of a query, made into `T` by `map`.
    async fn query_opt<T, F>(
        &self,
        sql: String,
        values: Vec<Value>,
        map: F,
    ) -> StoreResult<Option<T>>
    where
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.call(move |c| {
            let mut statement = c.prepare_cached(&sql)?;
            Ok(statement
                .query_row(rusqlite::params_from_iter(values), map)
                .optional()?)
        })
        .await
    }

    /// Every row of a query, each made into a `T` by `map`.
    async fn query<T, F>(&self, sql: String, values: Vec<Value>, map: F) -> StoreResult<Vec<T>>
    where
        F: FnMut(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.call(move |c| {
            let mut statement = c.prepare_cached(&sql)?;
            let rows = statement.query_map(rusqlite::params_from_iter(values), map)?;
            Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
        })
        .await
    }

    /// Runs `work` in an IMMEDIATE transaction, which takes the write lock up front (what it
    /// reads stays true until it commits), and commits unless it failed.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let done = work(&tx)?;
            tx.commit()?;
            Ok(done)
        })
        .await
    }

    /// [`write`](Self::write) for a request of `user_id`'s signed-in session `session_id`: `work`
    /// runs only while that session lives, else nothing is written and the answer is
    /// [`StoreError::SessionEnded`]. Write transactions take turns, so an ending of the user's
    /// sessions came wholly before the check or comes after the write.
    async fn write_for_session<T, F>(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        work: F,
    ) -> StoreResult<T>
    where
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let done = self.write(move |tx| {
            if session_lives(tx, user_id, session_id)? {
                work(tx).map(Some)
            } else {
                Ok(None)
            }
        });
        done.await?.ok_or(StoreError::SessionEnded)
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

/// The statement that counts one attempt at a single-use code of `table` (the row whose `key` is
/// `?1`), only while the code is unused, unexpired at `?2` and under `?3` attempts; it answers
/// `returning`, or no row when the code cannot be tried.
pub(super) fn attempt_statement(table: &str, key: &str, returning: &str) -> String {
    format!(
        "UPDATE {table} SET attempts = attempts + 1
         WHERE {key} = ?1 AND consumed_at IS NULL AND expires_at > ?2 AND attempts < ?3
         RETURNING {returning}"
    )
}
