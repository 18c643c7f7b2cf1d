//! PostgreSQL backend: tokio-postgres through a deadpool pool, statements prepared once per
//! connection, migrations embedded from `sql/postgres/`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::{
    applies_canonical_emails, configured_runner, migration_error, AuthEvent, EventPage,
    MigrationTarget, NewEvent, PoolStatus,
};
use super::{
    ClaimedEmail, ConsumedToken, DeliveryOutcome, NewOneTimeToken, NewSession, NewUser,
    OutboxEmail, PurgeTarget, RevokeReason, RevokedSession, Rotation, RotationOutcome, SessionInfo,
    SessionOwner, Store, StoreError, TokenOrigin, UserCredentials, UserPage,
};
use crate::config::{DatabaseSettings, JwtAlgorithm};
use crate::domain::email;
use crate::domain::one_time::TokenKind;
use crate::domain::refresh::TokenHash;
use crate::domain::user::{Role, User};
use crate::keys::StoredSigningKey;

mod embedded {
    refinery::embed_migrations!("sql/postgres");
}

/// Serialises migrations of several nodes starting at once (any constant works; this is "authd").
const MIGRATION_LOCK_KEY: i64 = 0x0061_7574_6864;

const USER_COLUMNS: &str = "id, email, name, role, email_verified, locked, created_at, updated_at";

#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

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

    /// Creates the database named in the URL if it is missing (development convenience).
    pub async fn create_database_if_missing(
        settings: &DatabaseSettings,
    ) -> Result<bool, StoreError> {
        let target = pg_config(settings)?;
        let Some(name) = target.get_dbname().map(str::to_string) else {
            return Ok(false);
        };
        let mut admin = target.clone();
        admin.dbname("postgres");
        let (client, connection) = admin.connect(NoTls).await.map_err(unavailable)?;
        let driver = tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(backend)?
            .is_some();
        if !exists {
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            match client
                .batch_execute(&format!("CREATE DATABASE {quoted}"))
                .await
            {
                Ok(()) => {}
                // Another node created it in the meantime.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        drop(client);
        let _ = driver.await;
        Ok(!exists)
    }

    /// Applies pending migrations under an advisory lock, each in its own transaction. Refuses a
    /// database that holds migrations this build does not know (migrated by a newer authd).
    pub async fn migrate(settings: &DatabaseSettings) -> Result<Vec<String>, StoreError> {
        Self::migrate_to(settings, None).await
    }

    /// Applies migrations up to `target` (all when `None`).
    pub async fn migrate_to(
        settings: &DatabaseSettings,
        target: MigrationTarget,
    ) -> Result<Vec<String>, StoreError> {
        let (mut client, connection) = pg_config(settings)?
            .connect(NoTls)
            .await
            .map_err(unavailable)?;
        let driver = tokio::spawn(connection);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await
            .map_err(backend)?;
        let report = configured_runner(embedded::migrations::runner(), target)
            .run_async(&mut client)
            .await;
        let recanonicalized = match &report {
            Ok(report) if applies_canonical_emails(report) => recanonicalize_emails(&client).await,
            _ => Ok(()),
        };
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
            .await;
        drop(client);
        let _ = driver.await;
        let report = report.map_err(|e| migration_error(&e))?;
        recanonicalized?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.query(&statement, params).await.map_err(backend)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.query_opt(&statement, params).await.map_err(backend)
    }

    async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.query_one(&statement, params).await.map_err(backend)
    }

    /// Runs one statement on a pooled connection, prepared once per connection.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.execute(&statement, params).await.map_err(backend)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => {
                StoreError::Unavailable("no database connection available in time".into())
            }
            PoolError::Backend(e) => unavailable(e),
            other => StoreError::Unavailable(other.to_string()),
        })
    }
}

/// Once, with the migration that introduced Unicode-aware canonical emails: recomputes the
/// comparison key of every account. Two accounts that now fold to one mailbox keep their rows; the
/// younger keeps its old key (logged), so nothing is lost and an operator can merge them.
async fn recanonicalize_emails(client: &tokio_postgres::Client) -> Result<(), StoreError> {
    let rows = client
        .query(
            "SELECT id, email, email_canonical FROM users ORDER BY created_at, id",
            &[],
        )
        .await
        .map_err(backend)?;
    for row in rows {
        let (id, address, old): (Uuid, String, String) = (row.get(0), row.get(1), row.get(2));
        let new = email::canonical(&address);
        if new == old {
            continue;
        }
        match client
            .execute(
                "UPDATE users SET email_canonical = $2 WHERE id = $1",
                &[&id, &new],
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => tracing::warn!(
                user_id = %id,
                "two live accounts hold one mailbox under Unicode normalisation; this one keeps its old key"
            ),
            Err(e) => return Err(backend(e)),
        }
    }
    Ok(())
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

fn unavailable(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Connection-level failures are retryable (503); statement failures are not. The server says
/// "retry later" with codes too: class 08 (connection exception), 53 (insufficient resources:
/// too many connections, out of memory or disk) and 57P0x (shutting down, starting up, crash
/// recovery), met while PostgreSQL restarts.
fn backend(e: tokio_postgres::Error) -> StoreError {
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

fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let role: String = row.try_get("role").map_err(backend)?;
    Ok(User {
        id: row.try_get("id").map_err(backend)?,
        email: row.try_get("email").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Backend(format!("unknown role {role:?}")))?,
        email_verified: row.try_get("email_verified").map_err(backend)?,
        locked: row.try_get("locked").map_err(backend)?,
        created_at: row
            .try_get::<_, DateTime<Utc>>("created_at")
            .map_err(backend)?,
        updated_at: row
            .try_get::<_, DateTime<Utc>>("updated_at")
            .map_err(backend)?,
    })
}

async fn insert_token(
    tx: &deadpool_postgres::Transaction<'_>,
    token: &NewOneTimeToken,
) -> Result<(), StoreError> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO one_time_tokens (token_hash, kind, user_id, email, metadata, expires_at, follow_up)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)",
        )
        .await
        .map_err(backend)?;
    tx.execute(
        &insert,
        &[
            &token.hash.as_slice(),
            &token.kind.as_str(),
            &token.user_id,
            &token.email,
            &token.metadata,
            &ttl(token.ttl_seconds),
            &token.follow_up,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

async fn insert_email(
    tx: &deadpool_postgres::Transaction<'_>,
    email: &OutboxEmail,
) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO email_outbox (id, message_id, recipient, subject, text_body, html_body)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(backend)?;
    tx.execute(
        &statement,
        &[
            &email.id,
            &email.message_id,
            &email.recipient,
            &email.subject,
            &email.text_body,
            &email.html_body,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

fn consumed_from_row(row: &Row) -> Result<ConsumedToken, StoreError> {
    let kind: String = row.try_get(0).map_err(backend)?;
    Ok(ConsumedToken {
        kind: TokenKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("unknown token kind {kind:?}")))?,
        user_id: row.try_get(1).map_err(backend)?,
        email: row.try_get(2).map_err(backend)?,
        metadata: row.try_get(3).map_err(backend)?,
    })
}

fn ttl(seconds: u64) -> f64 {
    seconds as f64
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(backend)?;
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<i64, StoreError> {
        let row = self
            .query_one(
                "SELECT count(*) FROM email_outbox WHERE status = 'pending'",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let statement = tx
            .prepare_cached(&format!(
                "INSERT INTO users (id, email, email_canonical, name, password_hash, role, email_verified,
                                    created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), now()) RETURNING {USER_COLUMNS}"
            ))
            .await
            .map_err(backend)?;
        let row = tx
            .query_one(
                &statement,
                &[
                    &user.id,
                    &user.email,
                    &email::canonical(&user.email),
                    &user.name,
                    &user.password_hash,
                    &user.role.as_str(),
                    &user.email_verified,
                    &user.created_at,
                ],
            )
            .await
            .map_err(|e| {
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                    StoreError::EmailTaken
                } else {
                    backend(e)
                }
            })?;
        let created = user_from_row(&row)?;
        if let Some((token, email)) = &user.verification {
            insert_token(&tx, token).await?;
            insert_email(&tx, email).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(created)
    }

    #[tracing::instrument(skip_all)]
    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {USER_COLUMNS}, password_hash FROM users
                 WHERE email_canonical = $1 AND deleted_at IS NULL"
                ),
                &[&email::canonical(email)],
            )
            .await?;
        row.map(|row| {
            Ok(UserCredentials {
                user: user_from_row(&row)?,
                password_hash: row.try_get("password_hash").map_err(backend)?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row = self
            .query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"),
                &[&id],
            )
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn rehash_password(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
            &[&id, &password_hash],
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn set_password(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let update = tx
            .prepare_cached("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
            .await
            .map_err(backend)?;
        tx.execute(&update, &[&id, &password_hash])
            .await
            .map_err(backend)?;
        let retire = tx
            .prepare_cached(
                "UPDATE one_time_tokens SET consumed_at = now()
                 WHERE user_id = $1 AND kind = 'password_reset' AND consumed_at IS NULL",
            )
            .await
            .map_err(backend)?;
        tx.execute(&retire, &[&id]).await.map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    #[tracing::instrument(skip_all)]
    async fn live_session_user(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<User>, StoreError> {
        let row = self
            .query_opt(
                "SELECT u.id, u.email, u.name, u.role, u.email_verified, u.locked, u.created_at, u.updated_at
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL
                   AND u.deleted_at IS NULL AND NOT u.locked",
                &[&session_id, &user_id],
            )
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn create_one_time_token(
        &self,
        token: &NewOneTimeToken,
        email: Option<&OutboxEmail>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        insert_token(&tx, token).await?;
        if let Some(email) = email {
            insert_email(&tx, email).await?;
        }
        tx.commit().await.map_err(backend)
    }

    #[tracing::instrument(skip_all)]
    async fn consume_one_time_token(
        &self,
        hash: TokenHash,
        kinds: &[TokenKind],
        origin: TokenOrigin,
    ) -> Result<Option<ConsumedToken>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE one_time_tokens SET consumed_at = now()
                 WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > now() AND kind = ANY($2)
                   AND (NOT follow_up OR NOT $3)
                 RETURNING kind, user_id, email, metadata",
            )
            .await
            .map_err(backend)?;
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let emailed_only = origin == TokenOrigin::Emailed;
        let row = client
            .query_opt(&statement, &[&hash.as_slice(), &kinds, &emailed_only])
            .await
            .map_err(backend)?;
        row.as_ref().map(consumed_from_row).transpose()
    }

    async fn peek_one_time_token(
        &self,
        hash: TokenHash,
        kinds: &[TokenKind],
    ) -> Result<Option<ConsumedToken>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT kind, user_id, email, metadata FROM one_time_tokens
                 WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > now() AND kind = ANY($2)",
            )
            .await
            .map_err(backend)?;
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let row = client
            .query_opt(&statement, &[&hash.as_slice(), &kinds])
            .await
            .map_err(backend)?;
        row.as_ref().map(consumed_from_row).transpose()
    }

    async fn enqueue_email(&self, email: &OutboxEmail) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        insert_email(&tx, email).await?;
        tx.commit().await.map_err(backend)
    }

    async fn claim_due_emails(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        let rows = self
            .query(
                "UPDATE email_outbox SET attempts = attempts + 1,
                        next_attempt_at = now() + make_interval(secs => $2)
                 WHERE id IN (SELECT id FROM email_outbox
                              WHERE status = 'pending' AND next_attempt_at <= now()
                              ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, message_id, recipient, subject, text_body, html_body, attempts",
                &[&i64::from(limit), &ttl(lease_seconds)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedEmail {
                    email: OutboxEmail {
                        id: row.try_get(0).map_err(backend)?,
                        message_id: row.try_get(1).map_err(backend)?,
                        recipient: row.try_get(2).map_err(backend)?,
                        subject: row.try_get(3).map_err(backend)?,
                        text_body: row.try_get(4).map_err(backend)?,
                        html_body: row.try_get(5).map_err(backend)?,
                    },
                    attempts: row.try_get::<_, i32>(6).map_err(backend)?.max(0) as u32,
                })
            })
            .collect()
    }

    async fn record_delivery(&self, id: Uuid, outcome: &DeliveryOutcome) -> Result<(), StoreError> {
        let client = self.client().await?;
        match outcome {
            DeliveryOutcome::Sent => {
                let statement = client
                    .prepare_cached(
                        "UPDATE email_outbox SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = $1",
                    )
                    .await
                    .map_err(backend)?;
                client.execute(&statement, &[&id]).await.map_err(backend)?;
            }
            DeliveryOutcome::Retry {
                after_seconds,
                error,
            } => {
                let statement = client
                    .prepare_cached(
                        "UPDATE email_outbox SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
                         WHERE id = $1",
                    )
                    .await
                    .map_err(backend)?;
                client
                    .execute(&statement, &[&id, &ttl(*after_seconds), error])
                    .await
                    .map_err(backend)?;
            }
            DeliveryOutcome::Dead { error } => {
                let statement = client
                    .prepare_cached(
                        "UPDATE email_outbox SET status = 'dead', last_error = $2 WHERE id = $1",
                    )
                    .await
                    .map_err(backend)?;
                client
                    .execute(&statement, &[&id, error])
                    .await
                    .map_err(backend)?;
            }
        }
        Ok(())
    }

    async fn mark_email_verified(&self, user_id: Uuid) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE users SET email_verified = true, updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
            )
            .await
            .map_err(backend)?;
        Ok(client
            .execute(&statement, &[&user_id])
            .await
            .map_err(backend)?
            > 0)
    }

    async fn record_event(&self, event: &NewEvent) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO auth_events (id, user_id, kind, ip, user_agent, request_id, details)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &Uuid::new_v4(),
                &event.user_id,
                &event.kind,
                &event.ip,
                &event.user_agent,
                &event.request_id,
                &event.details,
            ],
        )
        .await?;
        Ok(())
    }

    async fn list_events(&self, page: &EventPage) -> Result<Vec<AuthEvent>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, user_id, kind, ip, user_agent, request_id, details, created_at FROM auth_events
                 WHERE ($1::uuid IS NULL OR user_id = $1)
                   AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
                 ORDER BY created_at DESC, id DESC LIMIT $4",
            )
            .await
            .map_err(backend)?;
        let (before_time, before_id) = match page.before {
            Some((time, id)) => (Some(time), Some(id)),
            None => (None, None),
        };
        let rows = client
            .query(
                &statement,
                &[
                    &page.user_id,
                    &before_time,
                    &before_id,
                    &i64::from(page.limit),
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(AuthEvent {
                    id: row.try_get(0).map_err(backend)?,
                    user_id: row.try_get(1).map_err(backend)?,
                    kind: row.try_get(2).map_err(backend)?,
                    ip: row.try_get(3).map_err(backend)?,
                    user_agent: row.try_get(4).map_err(backend)?,
                    request_id: row.try_get(5).map_err(backend)?,
                    details: row.try_get(6).map_err(backend)?,
                    created_at: row.try_get(7).map_err(backend)?,
                })
            })
            .collect()
    }

    async fn purge(
        &self,
        target: PurgeTarget,
        retention_seconds: u64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let sql = match target {
            PurgeTarget::ExpiredRefreshTokens => {
                "DELETE FROM refresh_tokens WHERE token_hash IN (
                     SELECT token_hash FROM refresh_tokens
                     WHERE expires_at < now() - make_interval(secs => $1) LIMIT $2)"
            }
            PurgeTarget::DeadSessions => {
                "DELETE FROM sessions WHERE id IN (
                     SELECT id FROM sessions
                     WHERE expires_at < now() OR revoked_at < now() - make_interval(secs => $1)
                     LIMIT $2)"
            }
            PurgeTarget::SpentOneTimeTokens => {
                "DELETE FROM one_time_tokens WHERE token_hash IN (
                     SELECT token_hash FROM one_time_tokens
                     WHERE expires_at < now() OR consumed_at < now() - make_interval(secs => $1)
                     LIMIT $2)"
            }
            PurgeTarget::OldEvents => {
                "DELETE FROM auth_events WHERE id IN (
                     SELECT id FROM auth_events WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)"
            }
            PurgeTarget::DeliveredEmails => {
                "DELETE FROM email_outbox WHERE id IN (
                     SELECT id FROM email_outbox
                     WHERE status IN ('sent', 'dead') AND COALESCE(sent_at, next_attempt_at) < now() - make_interval(secs => $1)
                     LIMIT $2)"
            }
        };
        self.execute(sql, &[&ttl(retention_seconds), &i64::from(limit)])
            .await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows = self.query("SELECT kid, algorithm, private_key, public_jwk, created_at FROM signing_keys ORDER BY created_at", &[])
            .await?;
        rows.iter()
            .map(|row| {
                let algorithm: String = row.try_get(1).map_err(backend)?;
                Ok(StoredSigningKey {
                    kid: row.try_get(0).map_err(backend)?,
                    algorithm: JwtAlgorithm::parse(&algorithm).ok_or_else(|| {
                        StoreError::Backend(format!("unknown key algorithm {algorithm:?}"))
                    })?,
                    private_key: row.try_get(2).map_err(backend)?,
                    public_jwk: row.try_get(3).map_err(backend)?,
                    created_at: row.try_get(4).map_err(backend)?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        self.execute("INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk) VALUES ($1, $2, $3, $4)", &[
                    &key.kid,
                    &key.algorithm.name(),
                    &key.private_key,
                    &key.public_jwk,
                ])
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let insert_session = tx
            .prepare_cached(
                "INSERT INTO sessions (id, user_id, expires_at, user_agent, ip)
                 VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5)",
            )
            .await
            .map_err(backend)?;
        tx.execute(
            &insert_session,
            &[
                &session.id,
                &session.user_id,
                &ttl(session.refresh_ttl_seconds),
                &session.user_agent,
                &session.ip,
            ],
        )
        .await
        .map_err(backend)?;
        let insert_token = tx
            .prepare_cached(
                "INSERT INTO refresh_tokens (token_hash, session_id, generation, expires_at)
                 VALUES ($1, $2, 0, now() + make_interval(secs => $3))",
            )
            .await
            .map_err(backend)?;
        tx.execute(
            &insert_token,
            &[
                &session.refresh_hash.as_slice(),
                &session.id,
                &ttl(session.refresh_ttl_seconds),
            ],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        rotation: Rotation,
    ) -> Result<RotationOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let presented = rotation.presented.as_slice();

        // The session id of a token never changes, so it can be read before taking the lock.
        let find = tx
            .prepare_cached("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
            .await
            .map_err(backend)?;
        let Some(row) = tx.query_opt(&find, &[&presented]).await.map_err(backend)? else {
            return Ok(RotationOutcome::Invalid);
        };
        let session_id: Uuid = row.try_get(0).map_err(backend)?;

        // Every rotation of this family queues here; whoever gets the lock sees the committed
        // generation of whoever went before.
        let lock = tx
            .prepare_cached(
                "SELECT s.generation, s.revoked_at IS NOT NULL AS revoked, s.user_id, u.role,
                        (u.deleted_at IS NOT NULL OR u.locked) AS barred,
                        s.created_at < now() - make_interval(secs => $2) AS too_old
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.id = $1 FOR UPDATE OF s",
            )
            .await
            .map_err(backend)?;
        let Some(session) = tx
            .query_opt(
                &lock,
                &[&session_id, &ttl(rotation.session_max_lifetime_seconds)],
            )
            .await
            .map_err(backend)?
        else {
            return Ok(RotationOutcome::Invalid);
        };
        let current_generation: i64 = session.try_get("generation").map_err(backend)?;
        let revoked: bool = session.try_get("revoked").map_err(backend)?;
        let barred: bool = session.try_get("barred").map_err(backend)?;
        let user_id: Uuid = session.try_get("user_id").map_err(backend)?;
        let role: String = session.try_get("role").map_err(backend)?;
        let role = Role::parse(&role)
            .ok_or_else(|| StoreError::Backend(format!("unknown role {role:?}")))?;
        if revoked || barred {
            return Ok(RotationOutcome::Invalid);
        }
        if session.try_get::<_, bool>("too_old").map_err(backend)? {
            return Ok(RotationOutcome::Expired);
        }
        let owner = SessionOwner {
            session_id,
            user_id,
            role,
        };

        // Read after the lock: this statement sees what the previous holder committed.
        let token = tx
            .prepare_cached(
                "SELECT generation, expires_at <= now() AS expired,
                        (rotated_at IS NOT NULL AND rotated_at > now() - make_interval(secs => $2)) AS in_grace
                 FROM refresh_tokens WHERE token_hash = $1",
            )
            .await
            .map_err(backend)?;
        let Some(token) = tx
            .query_opt(&token, &[&presented, &ttl(rotation.grace_seconds)])
            .await
            .map_err(backend)?
        else {
            return Ok(RotationOutcome::Invalid);
        };
        let generation: i64 = token.try_get("generation").map_err(backend)?;
        let expired: bool = token.try_get("expired").map_err(backend)?;
        let in_grace: bool = token.try_get("in_grace").map_err(backend)?;

        if generation == current_generation {
            if expired {
                return Ok(RotationOutcome::Expired);
            }
            let retire = tx
                .prepare_cached(
                    "UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1",
                )
                .await
                .map_err(backend)?;
            tx.execute(&retire, &[&presented]).await.map_err(backend)?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO refresh_tokens (token_hash, session_id, generation, expires_at)
                     VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
                )
                .await
                .map_err(backend)?;
            tx.execute(
                &insert,
                &[
                    &rotation.child.as_slice(),
                    &session_id,
                    &(generation + 1),
                    &ttl(rotation.refresh_ttl_seconds),
                ],
            )
            .await
            .map_err(backend)?;
            let advance = tx
                .prepare_cached(
                    "UPDATE sessions SET generation = $2, last_used_at = now(),
                            expires_at = now() + make_interval(secs => $3)
                     WHERE id = $1",
                )
                .await
                .map_err(backend)?;
            tx.execute(
                &advance,
                &[
                    &session_id,
                    &(generation + 1),
                    &ttl(rotation.refresh_ttl_seconds),
                ],
            )
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            return Ok(RotationOutcome::Rotated(owner));
        }

        if generation + 1 == current_generation && in_grace {
            return Ok(RotationOutcome::GraceReplay(owner));
        }

        let revoke = tx
            .prepare_cached(
                "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
                 WHERE id = $1 AND revoked_at IS NULL",
            )
            .await
            .map_err(backend)?;
        tx.execute(&revoke, &[&session_id, &RevokeReason::Reuse.as_str()])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(RotationOutcome::Reused {
            session_id,
            user_id,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_session_by_refresh(
        &self,
        presented: TokenHash,
        reason: RevokeReason,
    ) -> Result<Option<RevokedSession>, StoreError> {
        let row = self
            .query_opt(
                "UPDATE sessions s SET revoked_at = COALESCE(s.revoked_at, now()),
                        revoked_reason = COALESCE(s.revoked_reason, $2)
                 FROM refresh_tokens rt
                 WHERE rt.token_hash = $1 AND s.id = rt.session_id
                 RETURNING s.id, s.user_id",
                &[&presented.as_slice(), &reason.as_str()],
            )
            .await?;
        row.map(|row| {
            Ok(RevokedSession {
                session_id: row.try_get(0).map_err(backend)?,
                user_id: row.try_get(1).map_err(backend)?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_session(
        &self,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
                 WHERE id = $1 AND revoked_at IS NULL",
                &[&session_id, &reason.as_str()],
            )
            .await?;
        Ok(changed > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: RevokeReason,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows = self
            .query(
                "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
                 WHERE user_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3)
                 RETURNING id",
                &[&user_id, &reason.as_str(), &except],
            )
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(backend))
            .collect()
    }

    async fn revoke_session_of(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
                 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
                &[&session_id, &user_id, &reason.as_str()],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn live_sessions(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, StoreError> {
        let rows = self
            .query(
                "SELECT id, created_at, last_used_at, user_agent, ip FROM sessions
                 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
                 ORDER BY last_used_at DESC, id",
                &[&user_id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SessionInfo {
                    id: row.try_get(0).map_err(backend)?,
                    created_at: row.try_get(1).map_err(backend)?,
                    last_used_at: row.try_get(2).map_err(backend)?,
                    user_agent: row.try_get(3).map_err(backend)?,
                    ip: row.try_get(4).map_err(backend)?,
                })
            })
            .collect()
    }

    async fn user_credentials_by_id(
        &self,
        id: Uuid,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = self.query_opt(&format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = $1 AND deleted_at IS NULL"
            ), &[&id])
            .await?;
        row.map(|row| {
            Ok(UserCredentials {
                user: user_from_row(&row)?,
                password_hash: row.try_get("password_hash").map_err(backend)?,
            })
        })
        .transpose()
    }

    async fn update_name(
        &self,
        id: Uuid,
        name: Option<String>,
    ) -> Result<Option<User>, StoreError> {
        let row = self
            .query_opt(
                &format!(
                    "UPDATE users SET name = $2, updated_at = now()
                 WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
                ),
                &[&id, &name],
            )
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn update_role_and_lock(
        &self,
        id: Uuid,
        role: Option<Role>,
        locked: Option<bool>,
    ) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE users SET role = COALESCE($2, role), locked = COALESCE($3, locked), updated_at = now()
                 WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
            ))
            .await
            .map_err(backend)?;
        let role = role.map(Role::as_str);
        let row = client
            .query_opt(&statement, &[&id, &role, &locked])
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn email_held_by_deleted_user(&self, email: &str) -> Result<bool, StoreError> {
        let row = self.query_one("SELECT EXISTS (SELECT 1 FROM users WHERE email_canonical = $1 AND deleted_at IS NOT NULL)", &[&email::canonical(email)])
            .await?;
        row.try_get(0).map_err(backend)
    }

    async fn soft_delete_user(&self, id: Uuid) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE users SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
            )
            .await
            .map_err(backend)?;
        Ok(client.execute(&statement, &[&id]).await.map_err(backend)? > 0)
    }

    async fn list_users(&self, page: &UserPage) -> Result<Vec<User>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users
                 WHERE deleted_at IS NULL
                   AND ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))
                   AND ($3::text IS NULL OR email_canonical LIKE $3 ESCAPE '\\' OR lower(name) LIKE $3 ESCAPE '\\')
                 ORDER BY created_at, id LIMIT $4"
            ))
            .await
            .map_err(backend)?;
        let (after_time, after_id) = match page.after {
            Some((time, id)) => (Some(time), Some(id)),
            None => (None, None),
        };
        let rows = client
            .query(
                &statement,
                &[
                    &after_time,
                    &after_id,
                    &page.like_pattern(),
                    &i64::from(page.limit),
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(user_from_row).collect()
    }
}
