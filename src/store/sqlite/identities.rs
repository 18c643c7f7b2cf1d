//! Identities at other providers, linked to accounts.

use async_trait::async_trait;
use rusqlite::params;
use uuid::Uuid;

use super::users::user_from_row;
use super::{now_value, text, Columns, SqliteStore, USER_COLUMNS};
use crate::domain::password::NO_PASSWORD;
use crate::domain::user::User;
use crate::store::*;

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn identity_owner(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<(User, SessionEpoch)>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, session_epoch FROM users
             WHERE deleted_at IS NULL
               AND id = (SELECT user_id FROM identities WHERE provider = ?1 AND subject = ?2)"
        );
        self.query_opt(sql, vec![text(provider), text(subject)], |row| {
            Ok((
                user_from_row(row)?,
                SessionEpoch(row.column("session_epoch")?),
            ))
        })
        .await
    }

    async fn link_identity(&self, identity: &NewIdentity, session_id: Uuid) -> StoreResult<bool> {
        let identity = identity.clone();
        let inserted = self.write_for_session(identity.user_id, session_id, move |tx| {
            insert_identity(tx, &identity, super::now_micros())
        });
        Ok(inserted.await? == 1)
    }

    async fn identities_of(&self, user_id: Uuid) -> StoreResult<Vec<LinkedIdentity>> {
        let sql = "SELECT provider, subject, email, created_at, last_used_at FROM identities
                   WHERE user_id = ?1 ORDER BY created_at, provider";
        self.query(sql.into(), vec![text(user_id)], |row| {
            Ok(record!(row => LinkedIdentity {
                provider, subject, email, created_at, last_used_at
            }))
        })
        .await
    }

    async fn unlink_identity(&self, user_id: Uuid, provider: &str) -> StoreResult<Unlinked> {
        let provider = provider.to_string();
        self.write(move |tx| {
            let user = user_id.to_string();
            let removed = tx
                .prepare_cached(
                    "DELETE FROM identities WHERE user_id = ?1 AND provider = ?2
                       AND (EXISTS (SELECT 1 FROM users WHERE id = ?1 AND password_hash <> ?3)
                            OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?1)
                            OR EXISTS (SELECT 1 FROM identities other
                                       WHERE other.user_id = ?1 AND other.provider <> ?2))",
                )?
                .execute(params![user, provider, NO_PASSWORD])?;
            if removed > 0 {
                return Ok(Unlinked::Removed);
            }
            let linked: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM identities WHERE user_id = ?1 AND provider = ?2)",
                )?
                .query_row(params![user, provider], |row| row.get(0))?;
            Ok(if linked {
                Unlinked::LastWayIn
            } else {
                Unlinked::NotLinked
            })
        })
        .await
    }

    async fn remove_identities(&self, user_id: Uuid) -> StoreResult<u64> {
        let sql = "DELETE FROM identities WHERE user_id = ?1";
        Ok(self.execute(sql, vec![text(user_id)]).await? as u64)
    }

    async fn record_identity_use(&self, provider: &str, subject: &str) -> StoreResult<()> {
        let sql = "UPDATE identities SET last_used_at = ?3 WHERE provider = ?1 AND subject = ?2";
        self.execute(sql, vec![text(provider), text(subject), now_value()])
            .await?;
        Ok(())
    }
}

/// Inserts an identity unless it, or one of the account at that provider, is there; answers how
/// many rows went in (0 or 1).
pub(super) fn insert_identity(
    tx: &rusqlite::Transaction<'_>,
    identity: &NewIdentity,
    now: i64,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO identities (provider, subject, user_id, email, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        identity.provider,
        identity.subject,
        identity.user_id.to_string(),
        identity.email,
        now
    ])
}
