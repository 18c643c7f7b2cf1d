//! Passkeys.

use async_trait::async_trait;
use uuid::Uuid;

use super::{begin, commit, execute, lock_user_for_session, Columns, Params, PostgresStore};
use crate::store::*;

const PASSKEY_COLUMNS: &str =
    "id, user_id, credential_id, name, credential, created_at, last_used_at";

fn passkey_from_row(row: &tokio_postgres::Row) -> StoreResult<StoredPasskey> {
    Ok(record!(row => StoredPasskey {
        id, user_id, credential_id, name, credential, created_at, last_used_at
    }))
}

#[async_trait]
impl PasskeyStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn add_passkey(&self, passkey: &StoredPasskey, session_id: Uuid) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock_user_for_session(&tx, &passkey.user_id, &session_id).await?;
        let insert =
            "INSERT INTO passkeys (id, user_id, credential_id, name, credential, created_at)
                      VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (credential_id) DO NOTHING";
        let values: Params = &[
            &passkey.id,
            &passkey.user_id,
            &passkey.credential_id,
            &passkey.name,
            &passkey.credential,
            &passkey.created_at,
        ];
        let added = execute(&tx, insert, values).await?;
        commit(tx).await?;
        Ok(added == 1)
    }

    async fn passkeys_of(&self, user_id: Uuid) -> StoreResult<Vec<StoredPasskey>> {
        let sql = format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
        );
        let rows = self.query(&sql, &[&user_id]).await?;
        rows.iter().map(passkey_from_row).collect()
    }

    async fn record_passkey_use(
        &self,
        id: Uuid,
        previous: &str,
        credential: &str,
    ) -> StoreResult<bool> {
        let recorded = self
            .execute(
                "UPDATE passkeys SET credential = $2, last_used_at = now()
                 WHERE id = $1 AND credential = $3",
                &[&id, &credential, &previous],
            )
            .await?;
        Ok(recorded > 0)
    }

    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str) -> StoreResult<bool> {
        let changed = self
            .execute(
                "UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2",
                &[&id, &user_id, &name],
            )
            .await?;
        Ok(changed == 1)
    }
}
