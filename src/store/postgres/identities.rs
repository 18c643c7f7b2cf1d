//! Identities at other providers, linked to accounts.

use async_trait::async_trait;
use uuid::Uuid;

use super::users::user_from_row;
use super::{
    begin, commit, execute, exists, lock_user, lock_user_for_session, Columns, PostgresStore,
    USER_COLUMNS,
};
use crate::domain::password::NO_PASSWORD;
use crate::domain::user::User;
use crate::store::*;

#[async_trait]
impl IdentityStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn identity_owner(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<(User, SessionEpoch)>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, session_epoch FROM users
             WHERE deleted_at IS NULL
               AND id = (SELECT user_id FROM identities WHERE provider = $1 AND subject = $2)"
        );
        let row = self.query_opt(&sql, &[&provider, &subject]).await?;
        row.map(|row| {
            Ok((
                user_from_row(&row)?,
                SessionEpoch(row.column("session_epoch")?),
            ))
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn link_identity(&self, identity: &NewIdentity, session_id: Uuid) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock_user_for_session(&tx, &identity.user_id, &session_id).await?;
        let linked = insert_identity(&tx, identity).await? == 1;
        commit(tx).await?;
        Ok(linked)
    }

    async fn identities_of(&self, user_id: Uuid) -> StoreResult<Vec<LinkedIdentity>> {
        let rows = self
            .query(
                "SELECT provider, subject, email, created_at, last_used_at FROM identities
                 WHERE user_id = $1 ORDER BY created_at, provider",
                &[&user_id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(record!(row => LinkedIdentity {
                    provider, subject, email, created_at, last_used_at
                }))
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn unlink_identity(&self, user_id: Uuid, provider: &str) -> StoreResult<Unlinked> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // The guard reads other tables: two removals at once must not each see the other's row.
        lock_user(&tx, &user_id).await?;
        let removed = execute(
            &tx,
            "DELETE FROM identities WHERE user_id = $1 AND provider = $2
               AND (EXISTS (SELECT 1 FROM users WHERE id = $1 AND password_hash <> $3)
                    OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)
                    OR EXISTS (SELECT 1 FROM identities other
                               WHERE other.user_id = $1 AND other.provider <> $2))",
            &[&user_id, &provider, &NO_PASSWORD],
        )
        .await?;
        let unlinked = if removed > 0 {
            Unlinked::Removed
        } else {
            let linked =
                "SELECT EXISTS (SELECT 1 FROM identities WHERE user_id = $1 AND provider = $2)";
            if exists(&tx, linked, &[&user_id, &provider]).await? {
                Unlinked::LastWayIn
            } else {
                Unlinked::NotLinked
            }
        };
        commit(tx).await?;
        Ok(unlinked)
    }

    async fn remove_identities(&self, user_id: Uuid) -> StoreResult<u64> {
        self.execute("DELETE FROM identities WHERE user_id = $1", &[&user_id])
            .await
    }

    async fn record_identity_use(&self, provider: &str, subject: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE identities SET last_used_at = now() WHERE provider = $1 AND subject = $2",
            &[&provider, &subject],
        )
        .await?;
        Ok(())
    }
}

/// Inserts an identity unless it, or one of the account at that provider, is there; answers how
/// many rows went in (0 or 1).
pub(super) async fn insert_identity(
    client: &impl deadpool_postgres::GenericClient,
    identity: &NewIdentity,
) -> StoreResult<u64> {
    let insert = "INSERT INTO identities (provider, subject, user_id, email)
                  VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
    let NewIdentity {
        provider,
        subject,
        user_id,
        email,
    } = identity;
    execute(client, insert, &[provider, subject, user_id, email]).await
}
