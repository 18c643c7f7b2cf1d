//! SQLite backend, the embedded default: one connection owned by a dedicated thread
//! (tokio-rusqlite), so SQLite's blocking calls never run on an async thread and every write is
//! serialised without `SQLITE_BUSY`. WAL journal, foreign keys on, migrations from `sql/sqlite/`.
//! Times are stored as Unix microseconds (UTC).

use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use uuid::Uuid;

use super::{
    applies_canonical_emails, configured_runner, migration_error, AuthEvent, EventPage,
    MigrationTarget, NewEvent,
};
use super::{
    ClaimedEmail, ConsumedToken, DeliveryOutcome, NewOneTimeToken, NewSession, NewUser,
    OutboxEmail, PurgeTarget, RevokeReason, RevokedSession, Rotation, RotationOutcome, SessionInfo,
    SessionOwner, Store, StoreError, TokenOrigin, UserCredentials, UserPage,
};
use crate::config::JwtAlgorithm;
use crate::domain::email;
use crate::domain::one_time::TokenKind;
use crate::domain::refresh::TokenHash;
use crate::domain::user::{Role, User};
use crate::keys::StoredSigningKey;

mod embedded {
    refinery::embed_migrations!("sql/sqlite");
}

const USER_COLUMNS: &str = "id, email, name, role, email_verified, locked, created_at, updated_at";

#[derive(Clone)]
pub struct SqliteStore {
    connection: tokio_rusqlite::Connection,
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn seconds_to_micros(seconds: u64) -> i64 {
    i64::try_from(seconds)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000)
}

fn store_error(e: tokio_rusqlite::Error) -> StoreError {
    match e {
        tokio_rusqlite::Error::ConnectionClosed => {
            StoreError::Unavailable("the SQLite connection is closed".into())
        }
        other => StoreError::Backend(other.to_string()),
    }
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

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: uuid_at(row, 0)?,
        email: row.get(1)?,
        name: row.get(2)?,
        role: role_from(&row.get::<_, String>(3)?)?,
        email_verified: row.get(4)?,
        locked: row.get(5)?,
        created_at: time_at(row, 6)?,
        updated_at: time_at(row, 7)?,
    })
}

fn insert_token(
    tx: &rusqlite::Transaction<'_>,
    token: &NewOneTimeToken,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO one_time_tokens (token_hash, kind, user_id, email, metadata, created_at, expires_at, follow_up)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        token.hash.as_slice(),
        token.kind.as_str(),
        token.user_id.map(|id| id.to_string()),
        token.email,
        token.metadata,
        now,
        now.saturating_add(seconds_to_micros(token.ttl_seconds)),
        token.follow_up
    ])?;
    Ok(())
}

fn insert_email(
    tx: &rusqlite::Transaction<'_>,
    email: &OutboxEmail,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO email_outbox (id, message_id, recipient, subject, text_body, html_body, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        email.id.to_string(),
        email.message_id,
        email.recipient,
        email.subject,
        email.text_body,
        email.html_body,
        now
    ])?;
    Ok(())
}

/// `,a,b,` for `instr(list, ',' || kind || ',')`: a kind filter without building SQL.
fn kinds_list(kinds: &[TokenKind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    format!(",{},", names.join(","))
}

fn consumed_from_row(row: &Row<'_>) -> rusqlite::Result<ConsumedToken> {
    let kind: String = row.get(0)?;
    let user_id: Option<String> = row.get(1)?;
    Ok(ConsumedToken {
        kind: TokenKind::parse(&kind).ok_or_else(|| corrupt("token kind"))?,
        user_id: user_id
            .map(|id| id.parse().map_err(|_| corrupt("uuid")))
            .transpose()?,
        email: row.get(2)?,
        metadata: row.get(3)?,
    })
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database file, or an in-memory one.
    pub async fn open(path: Option<&Path>) -> Result<Self, StoreError> {
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
        }
        .map_err(store_error)?;
        connection
            .call(|c| {
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "NORMAL")?;
                c.pragma_update(None, "foreign_keys", "ON")?;
                c.pragma_update(None, "busy_timeout", 5000)?;
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(SqliteStore { connection })
    }

    /// Applies pending migrations, each in a transaction; refuses a database that holds migrations
    /// this build does not know.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.migrate_to(None).await
    }

    /// Applies migrations up to `target` (all when `None`).
    pub async fn migrate_to(&self, target: MigrationTarget) -> Result<Vec<String>, StoreError> {
        self.connection
            .call(move |c| {
                let report = match configured_runner(embedded::migrations::runner(), target).run(c)
                {
                    Ok(report) => report,
                    Err(e) => return Ok(Err(migration_error(&e))),
                };
                if applies_canonical_emails(&report) {
                    recanonicalize_emails(c)?;
                }
                Ok(Ok(report
                    .applied_migrations()
                    .iter()
                    .map(|m| m.to_string())
                    .collect()))
            })
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?
    }
}

/// Once, with the migration that introduced Unicode-aware canonical emails: recomputes the
/// comparison key of every account (see the PostgreSQL backend; the same rule).
fn recanonicalize_emails(c: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    let accounts: Vec<(String, String, String)> = c
        .prepare("SELECT id, email, email_canonical FROM users ORDER BY created_at, id")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, address, old) in accounts {
        let new = email::canonical(&address);
        if new == old {
            continue;
        }
        match c.execute(
            "UPDATE users SET email_canonical = ?2 WHERE id = ?1",
            params![id, new],
        ) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                tracing::warn!(
                    user_id = %id,
                    "two live accounts hold one mailbox under Unicode normalisation; this one keeps its old key"
                )
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.connection
            .call(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
            .map_err(store_error)
    }

    async fn outbox_depth(&self) -> Result<i64, StoreError> {
        self.connection
            .call(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM email_outbox WHERE status = 'pending'",
                    [],
                    |row| row.get(0),
                )?)
            })
            .await
            .map_err(store_error)
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.connection
            .call(move |c| {
                let now = now_micros();
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut statement = tx.prepare_cached(&format!(
                    "INSERT INTO users (id, email, email_canonical, name, password_hash, role, email_verified,
                                        created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING {USER_COLUMNS}"
                ))?;
                let created = statement.query_row(
                    params![
                        user.id.to_string(),
                        user.email,
                        email::canonical(&user.email),
                        user.name,
                        user.password_hash,
                        user.role.as_str(),
                        user.email_verified,
                        user.created_at.map(|t| t.timestamp_micros()).unwrap_or(now),
                        now
                    ],
                    user_from_row,
                )?;
                drop(statement);
                if let Some((token, email)) = &user.verification {
                    insert_token(&tx, token, now)?;
                    insert_email(&tx, email, now)?;
                }
                tx.commit()?;
                Ok(created)
            })
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::EmailTaken
                } else {
                    store_error(e)
                }
            })
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let canonical = email::canonical(email);
        self.connection
            .call(move |c| {
                let mut statement = c.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS}, password_hash FROM users
                     WHERE email_canonical = ?1 AND deleted_at IS NULL"
                ))?;
                Ok(statement
                    .query_row([canonical], |row| {
                        Ok(UserCredentials {
                            user: user_from_row(row)?,
                            password_hash: row.get(8)?,
                        })
                    })
                    .optional()?)
            })
            .await
            .map_err(store_error)
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.connection
            .call(move |c| {
                let mut statement = c.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL"
                ))?;
                Ok(statement
                    .query_row([id.to_string()], user_from_row)
                    .optional()?)
            })
            .await
            .map_err(store_error)
    }

    async fn rehash_password(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        let password_hash = password_hash.to_string();
        self.connection
            .call(move |c| {
                c.prepare_cached(
                    "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![id.to_string(), password_hash, now_micros()])?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn set_password(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        let password_hash = password_hash.to_string();
        self.connection
            .call(move |c| {
                let now = now_micros();
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.prepare_cached(
                    "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![id.to_string(), password_hash, now])?;
                tx.prepare_cached(
                    "UPDATE one_time_tokens SET consumed_at = ?2
                     WHERE user_id = ?1 AND kind = 'password_reset' AND consumed_at IS NULL",
                )?
                .execute(params![id.to_string(), now])?;
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn live_session_user(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<User>, StoreError> {
        self.connection
            .call(move |c| {
                Ok(c.prepare_cached(
                    "SELECT u.id, u.email, u.name, u.role, u.email_verified, u.locked, u.created_at, u.updated_at
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL
                       AND u.deleted_at IS NULL AND NOT u.locked",
                )?
                .query_row(
                    params![session_id.to_string(), user_id.to_string()],
                    user_from_row,
                )
                .optional()?)
            })
            .await
            .map_err(store_error)
    }

    async fn create_one_time_token(
        &self,
        token: &NewOneTimeToken,
        email: Option<&OutboxEmail>,
    ) -> Result<(), StoreError> {
        let token = token.clone();
        let email = email.cloned();
        self.connection
            .call(move |c| {
                let now = now_micros();
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                insert_token(&tx, &token, now)?;
                if let Some(email) = &email {
                    insert_email(&tx, email, now)?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn consume_one_time_token(
        &self,
        hash: TokenHash,
        kinds: &[TokenKind],
        origin: TokenOrigin,
    ) -> Result<Option<ConsumedToken>, StoreError> {
        let kinds = kinds_list(kinds);
        let emailed_only = origin == TokenOrigin::Emailed;
        self.connection
            .call(move |c| {
                let found = c
                    .prepare_cached(
                        "UPDATE one_time_tokens SET consumed_at = ?2
                         WHERE token_hash = ?1 AND consumed_at IS NULL AND expires_at > ?2
                           AND instr(?3, ',' || kind || ',') > 0 AND (NOT follow_up OR NOT ?4)
                         RETURNING kind, user_id, email, metadata",
                    )?
                    .query_row(
                        params![hash.as_slice(), now_micros(), kinds, emailed_only],
                        consumed_from_row,
                    )
                    .optional()?;
                Ok(found)
            })
            .await
            .map_err(store_error)
    }

    async fn peek_one_time_token(
        &self,
        hash: TokenHash,
        kinds: &[TokenKind],
    ) -> Result<Option<ConsumedToken>, StoreError> {
        let kinds = kinds_list(kinds);
        self.connection
            .call(move |c| {
                Ok(c.prepare_cached(
                    "SELECT kind, user_id, email, metadata FROM one_time_tokens
                     WHERE token_hash = ?1 AND consumed_at IS NULL AND expires_at > ?2
                       AND instr(?3, ',' || kind || ',') > 0",
                )?
                .query_row(
                    params![hash.as_slice(), now_micros(), kinds],
                    consumed_from_row,
                )
                .optional()?)
            })
            .await
            .map_err(store_error)
    }

    async fn enqueue_email(&self, email: &OutboxEmail) -> Result<(), StoreError> {
        let email = email.clone();
        self.connection
            .call(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                insert_email(&tx, &email, now_micros())?;
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn claim_due_emails(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        self.connection
            .call(move |c| {
                let now = now_micros();
                let mut statement = c.prepare_cached(
                    "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = ?3
                     WHERE id IN (SELECT id FROM email_outbox
                                  WHERE status = 'pending' AND next_attempt_at <= ?2
                                  ORDER BY next_attempt_at LIMIT ?1)
                     RETURNING id, message_id, recipient, subject, text_body, html_body, attempts",
                )?;
                let claimed = statement
                    .query_map(
                        params![
                            i64::from(limit),
                            now,
                            now.saturating_add(seconds_to_micros(lease_seconds))
                        ],
                        |row| {
                            Ok(ClaimedEmail {
                                email: OutboxEmail {
                                    id: uuid_at(row, 0)?,
                                    message_id: row.get(1)?,
                                    recipient: row.get(2)?,
                                    subject: row.get(3)?,
                                    text_body: row.get(4)?,
                                    html_body: row.get(5)?,
                                },
                                attempts: row.get::<_, i64>(6)?.max(0) as u32,
                            })
                        },
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(claimed)
            })
            .await
            .map_err(store_error)
    }

    async fn record_delivery(&self, id: Uuid, outcome: &DeliveryOutcome) -> Result<(), StoreError> {
        let outcome = outcome.clone();
        self.connection
            .call(move |c| {
                let now = now_micros();
                let id = id.to_string();
                match outcome {
                    DeliveryOutcome::Sent => c
                        .prepare_cached(
                            "UPDATE email_outbox SET status = 'sent', sent_at = ?2, last_error = NULL WHERE id = ?1",
                        )?
                        .execute(params![id, now])?,
                    DeliveryOutcome::Retry { after_seconds, error } => c
                        .prepare_cached("UPDATE email_outbox SET next_attempt_at = ?2, last_error = ?3 WHERE id = ?1")?
                        .execute(params![id, now.saturating_add(seconds_to_micros(after_seconds)), error])?,
                    DeliveryOutcome::Dead { error } => c
                        .prepare_cached("UPDATE email_outbox SET status = 'dead', last_error = ?2 WHERE id = ?1")?
                        .execute(params![id, error])?,
                };
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn mark_email_verified(&self, user_id: Uuid) -> Result<bool, StoreError> {
        self.connection
            .call(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
                    )?
                    .execute(params![user_id.to_string(), now_micros()])?;
                Ok(changed > 0)
            })
            .await
            .map_err(store_error)
    }

    async fn record_event(&self, event: &NewEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.connection
            .call(move |c| {
                c.prepare_cached(
                    "INSERT INTO auth_events (id, user_id, kind, ip, user_agent, request_id, details, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    Uuid::new_v4().to_string(),
                    event.user_id.map(|id| id.to_string()),
                    event.kind,
                    event.ip,
                    event.user_agent,
                    event.request_id,
                    event.details,
                    now_micros()
                ])?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn list_events(&self, page: &EventPage) -> Result<Vec<AuthEvent>, StoreError> {
        let user_id = page.user_id.map(|id| id.to_string());
        let (before_time, before_id) = match page.before {
            Some((time, id)) => (Some(time.timestamp_micros()), Some(id.to_string())),
            None => (None, None),
        };
        let limit = i64::from(page.limit);
        self.connection
            .call(move |c| {
                let mut statement = c.prepare_cached(
                    "SELECT id, user_id, kind, ip, user_agent, request_id, details, created_at FROM auth_events
                     WHERE (?1 IS NULL OR user_id = ?1)
                       AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id < ?3))
                     ORDER BY created_at DESC, id DESC LIMIT ?4",
                )?;
                let events = statement
                    .query_map(params![user_id, before_time, before_id, limit], |row| {
                        let user_id: Option<String> = row.get(1)?;
                        Ok(AuthEvent {
                            id: uuid_at(row, 0)?,
                            user_id: user_id.map(|id| id.parse().map_err(|_| corrupt("uuid"))).transpose()?,
                            kind: row.get(2)?,
                            ip: row.get(3)?,
                            user_agent: row.get(4)?,
                            request_id: row.get(5)?,
                            details: row.get(6)?,
                            created_at: time_at(row, 7)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(events)
            })
            .await
            .map_err(store_error)
    }

    async fn purge(
        &self,
        target: PurgeTarget,
        retention_seconds: u64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let sql = match target {
            PurgeTarget::ExpiredRefreshTokens => {
                "DELETE FROM refresh_tokens WHERE rowid IN (
                     SELECT rowid FROM refresh_tokens WHERE expires_at < ?1 - ?2 LIMIT ?3)"
            }
            PurgeTarget::DeadSessions => {
                "DELETE FROM sessions WHERE rowid IN (
                     SELECT rowid FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1 - ?2 LIMIT ?3)"
            }
            PurgeTarget::SpentOneTimeTokens => {
                "DELETE FROM one_time_tokens WHERE rowid IN (
                     SELECT rowid FROM one_time_tokens WHERE expires_at < ?1 OR consumed_at < ?1 - ?2 LIMIT ?3)"
            }
            PurgeTarget::OldEvents => {
                "DELETE FROM auth_events WHERE rowid IN (
                     SELECT rowid FROM auth_events WHERE created_at < ?1 - ?2 LIMIT ?3)"
            }
            PurgeTarget::DeliveredEmails => {
                "DELETE FROM email_outbox WHERE rowid IN (
                     SELECT rowid FROM email_outbox
                     WHERE status IN ('sent', 'dead') AND COALESCE(sent_at, next_attempt_at) < ?1 - ?2 LIMIT ?3)"
            }
        };
        self.connection
            .call(move |c| {
                let deleted = c.prepare_cached(sql)?.execute(params![
                    now_micros(),
                    seconds_to_micros(retention_seconds),
                    i64::from(limit)
                ])?;
                Ok(deleted as u64)
            })
            .await
            .map_err(store_error)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.connection
            .call(|c| {
                let mut statement = c.prepare_cached(
                    "SELECT kid, algorithm, private_key, public_jwk, created_at FROM signing_keys ORDER BY created_at",
                )?;
                let keys = statement
                    .query_map([], |row| {
                        let algorithm: String = row.get(1)?;
                        Ok(StoredSigningKey {
                            kid: row.get(0)?,
                            algorithm: JwtAlgorithm::parse(&algorithm).ok_or_else(|| corrupt("key algorithm"))?,
                            private_key: row.get(2)?,
                            public_jwk: row.get(3)?,
                            created_at: time_at(row, 4)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(keys)
            })
            .await
            .map_err(store_error)
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.connection
            .call(move |c| {
                c.prepare_cached(
                    "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    key.kid,
                    key.algorithm.name(),
                    key.private_key,
                    key.public_jwk,
                    now_micros()
                ])?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        self.connection
            .call(move |c| {
                let now = now_micros();
                let expires_at = now.saturating_add(seconds_to_micros(session.refresh_ttl_seconds));
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.prepare_cached(
                    "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    session.id.to_string(),
                    session.user_id.to_string(),
                    now,
                    expires_at,
                    session.user_agent,
                    session.ip
                ])?;
                tx.prepare_cached(
                    "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at, expires_at)
                     VALUES (?1, ?2, 0, ?3, ?4)",
                )?
                .execute(params![
                    session.refresh_hash.as_slice(),
                    session.id.to_string(),
                    now,
                    expires_at
                ])?;
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(store_error)
    }

    async fn rotate_refresh_token(
        &self,
        rotation: Rotation,
    ) -> Result<RotationOutcome, StoreError> {
        self.connection
            .call(move |c| {
                let now = now_micros();
                // IMMEDIATE takes the write lock up front: rotations are serialised, each sees the
                // generation the previous one committed.
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let presented = rotation.presented.as_slice();
                let found = tx
                    .prepare_cached(
                        "SELECT rt.session_id, rt.generation, rt.expires_at, rt.rotated_at,
                                s.generation, s.revoked_at IS NOT NULL, s.user_id, u.role,
                                (u.deleted_at IS NOT NULL OR u.locked), s.created_at
                         FROM refresh_tokens rt
                         JOIN sessions s ON s.id = rt.session_id
                         JOIN users u ON u.id = s.user_id
                         WHERE rt.token_hash = ?1",
                    )?
                    .query_row([presented], |row| {
                        Ok((
                            uuid_at(row, 0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, Option<i64>>(3)?,
                            row.get::<_, i64>(4)?,
                            row.get::<_, bool>(5)?,
                            uuid_at(row, 6)?,
                            role_from(&row.get::<_, String>(7)?)?,
                            row.get::<_, bool>(8)?,
                            row.get::<_, i64>(9)?,
                        ))
                    })
                    .optional()?;
                let Some((
                    session_id,
                    generation,
                    expires_at,
                    rotated_at,
                    current_generation,
                    revoked,
                    user_id,
                    role,
                    barred,
                    session_created_at,
                )) = found
                else {
                    return Ok(RotationOutcome::Invalid);
                };
                if revoked || barred {
                    return Ok(RotationOutcome::Invalid);
                }
                if session_created_at < now.saturating_sub(seconds_to_micros(rotation.session_max_lifetime_seconds)) {
                    return Ok(RotationOutcome::Expired);
                }
                let owner = SessionOwner {
                    session_id,
                    user_id,
                    role,
                };

                if generation == current_generation {
                    if expires_at <= now {
                        return Ok(RotationOutcome::Expired);
                    }
                    let child_expires_at = now.saturating_add(seconds_to_micros(rotation.refresh_ttl_seconds));
                    tx.prepare_cached("UPDATE refresh_tokens SET rotated_at = ?2 WHERE token_hash = ?1")?
                        .execute(params![presented, now])?;
                    tx.prepare_cached(
                        "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at, expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        rotation.child.as_slice(),
                        session_id.to_string(),
                        generation + 1,
                        now,
                        child_expires_at
                    ])?;
                    tx.prepare_cached(
                        "UPDATE sessions SET generation = ?2, last_used_at = ?3, expires_at = ?4 WHERE id = ?1",
                    )?
                    .execute(params![session_id.to_string(), generation + 1, now, child_expires_at])?;
                    tx.commit()?;
                    return Ok(RotationOutcome::Rotated(owner));
                }

                let grace = seconds_to_micros(rotation.grace_seconds);
                let in_grace = rotated_at.is_some_and(|at| at > now.saturating_sub(grace));
                if generation + 1 == current_generation && in_grace {
                    return Ok(RotationOutcome::GraceReplay(owner));
                }

                tx.prepare_cached(
                    "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![session_id.to_string(), now, RevokeReason::Reuse.as_str()])?;
                tx.commit()?;
                Ok(RotationOutcome::Reused { session_id, user_id })
            })
            .await
            .map_err(store_error)
    }

    async fn revoke_session_by_refresh(
        &self,
        presented: TokenHash,
        reason: RevokeReason,
    ) -> Result<Option<RevokedSession>, StoreError> {
        self.connection
            .call(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let found = tx
                    .prepare_cached(
                        "SELECT s.id, s.user_id FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
                         WHERE rt.token_hash = ?1",
                    )?
                    .query_row([presented.as_slice()], |row| Ok((uuid_at(row, 0)?, uuid_at(row, 1)?)))
                    .optional()?;
                let Some((session_id, user_id)) = found else {
                    return Ok(None);
                };
                tx.prepare_cached(
                    "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![session_id.to_string(), now_micros(), reason.as_str()])?;
                tx.commit()?;
                Ok(Some(RevokedSession { session_id, user_id }))
            })
            .await
            .map_err(store_error)
    }

    async fn revoke_session(
        &self,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> Result<bool, StoreError> {
        self.connection
            .call(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                         WHERE id = ?1 AND revoked_at IS NULL",
                    )?
                    .execute(params![
                        session_id.to_string(),
                        now_micros(),
                        reason.as_str()
                    ])?;
                Ok(changed > 0)
            })
            .await
            .map_err(store_error)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: RevokeReason,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.connection
            .call(move |c| {
                let mut statement = c.prepare_cached(
                    "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                     WHERE user_id = ?1 AND revoked_at IS NULL AND (?4 IS NULL OR id <> ?4) RETURNING id",
                )?;
                let ids = statement
                    .query_map(
                        params![
                            user_id.to_string(),
                            now_micros(),
                            reason.as_str(),
                            except.map(|id| id.to_string())
                        ],
                        |row| uuid_at(row, 0),
                    )?
                    .collect::<rusqlite::Result<Vec<Uuid>>>()?;
                Ok(ids)
            })
            .await
            .map_err(store_error)
    }

    async fn revoke_session_of(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> Result<bool, StoreError> {
        self.connection
            .call(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE sessions SET revoked_at = ?3, revoked_reason = ?4
                         WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
                    )?
                    .execute(params![
                        session_id.to_string(),
                        user_id.to_string(),
                        now_micros(),
                        reason.as_str()
                    ])?;
                Ok(changed > 0)
            })
            .await
            .map_err(store_error)
    }

    async fn live_sessions(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, StoreError> {
        self.connection
            .call(move |c| {
                let mut statement = c.prepare_cached(
                    "SELECT id, created_at, last_used_at, user_agent, ip FROM sessions
                     WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2
                     ORDER BY last_used_at DESC, id",
                )?;
                let sessions = statement
                    .query_map(params![user_id.to_string(), now_micros()], |row| {
                        Ok(SessionInfo {
                            id: uuid_at(row, 0)?,
                            created_at: time_at(row, 1)?,
                            last_used_at: time_at(row, 2)?,
                            user_agent: row.get(3)?,
                            ip: row.get(4)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(sessions)
            })
            .await
            .map_err(store_error)
    }

    async fn user_credentials_by_id(
        &self,
        id: Uuid,
    ) -> Result<Option<UserCredentials>, StoreError> {
        self.connection
            .call(move |c| {
                let mut statement = c.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = ?1 AND deleted_at IS NULL"
                ))?;
                Ok(statement
                    .query_row([id.to_string()], |row| {
                        Ok(UserCredentials {
                            user: user_from_row(row)?,
                            password_hash: row.get(8)?,
                        })
                    })
                    .optional()?)
            })
            .await
            .map_err(store_error)
    }

    async fn update_name(
        &self,
        id: Uuid,
        name: Option<String>,
    ) -> Result<Option<User>, StoreError> {
        self.connection
            .call(move |c| {
                let mut statement = c.prepare_cached(&format!(
                    "UPDATE users SET name = ?2, updated_at = ?3
                     WHERE id = ?1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
                ))?;
                Ok(statement
                    .query_row(params![id.to_string(), name, now_micros()], user_from_row)
                    .optional()?)
            })
            .await
            .map_err(store_error)
    }

    async fn update_role_and_lock(
        &self,
        id: Uuid,
        role: Option<Role>,
        locked: Option<bool>,
    ) -> Result<Option<User>, StoreError> {
        self.connection
            .call(move |c| {
                let mut statement = c.prepare_cached(&format!(
                    "UPDATE users SET role = COALESCE(?2, role), locked = COALESCE(?3, locked), updated_at = ?4
                     WHERE id = ?1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
                ))?;
                Ok(statement
                    .query_row(
                        params![id.to_string(), role.map(Role::as_str), locked, now_micros()],
                        user_from_row,
                    )
                    .optional()?)
            })
            .await
            .map_err(store_error)
    }

    async fn email_held_by_deleted_user(&self, email: &str) -> Result<bool, StoreError> {
        let canonical = email::canonical(email);
        self.connection
            .call(move |c| {
                Ok(c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE email_canonical = ?1 AND deleted_at IS NOT NULL)",
                )?
                .query_row([canonical], |row| row.get::<_, bool>(0))?)
            })
            .await
            .map_err(store_error)
    }

    async fn soft_delete_user(&self, id: Uuid) -> Result<bool, StoreError> {
        self.connection
            .call(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE users SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
                    )?
                    .execute(params![id.to_string(), now_micros()])?;
                Ok(changed > 0)
            })
            .await
            .map_err(store_error)
    }

    async fn list_users(&self, page: &UserPage) -> Result<Vec<User>, StoreError> {
        let (after_time, after_id) = match page.after {
            Some((time, id)) => (Some(time.timestamp_micros()), Some(id.to_string())),
            None => (None, None),
        };
        let pattern = page.like_pattern();
        let limit = i64::from(page.limit);
        self.connection
            .call(move |c| {
                let mut statement = c.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users
                     WHERE deleted_at IS NULL
                       AND (?1 IS NULL OR created_at > ?1 OR (created_at = ?1 AND id > ?2))
                       AND (?3 IS NULL OR email_canonical LIKE ?3 ESCAPE '\\' OR lower(name) LIKE ?3 ESCAPE '\\')
                     ORDER BY created_at, id LIMIT ?4"
                ))?;
                let users = statement
                    .query_map(params![after_time, after_id, pattern, limit], user_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(users)
            })
            .await
            .map_err(store_error)
    }
}
