//! Passkeys.

use async_trait::async_trait;
use rusqlite::params;
use uuid::Uuid;

use super::{now_value, text, Columns, SqliteStore};
use crate::store::*;

#[async_trait]
impl PasskeyStore for SqliteStore {
    async fn add_passkey(&self, passkey: &StoredPasskey, session_id: Uuid) -> StoreResult<bool> {
        let passkey = passkey.clone();
        let added = self.write_for_session(passkey.user_id, session_id, move |tx| {
            tx.prepare_cached(
                "INSERT INTO passkeys (id, user_id, credential_id, name, credential, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (credential_id) DO NOTHING",
            )?
            .execute(params![
                passkey.id.to_string(),
                passkey.user_id.to_string(),
                passkey.credential_id,
                passkey.name,
                passkey.credential,
                passkey.created_at.timestamp_micros(),
            ])
        });
        Ok(added.await? == 1)
    }

    async fn passkeys_of(&self, user_id: Uuid) -> StoreResult<Vec<StoredPasskey>> {
        let sql = "SELECT id, user_id, credential_id, name, credential, created_at, last_used_at
                   FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id";
        self.query(sql.into(), vec![text(user_id)], |row| {
            Ok(record!(row => StoredPasskey {
                id, user_id, credential_id, name, credential, created_at, last_used_at
            }))
        })
        .await
    }

    async fn record_passkey_use(
        &self,
        id: Uuid,
        previous: &str,
        credential: &str,
    ) -> StoreResult<bool> {
        let sql = "UPDATE passkeys SET credential = ?2, last_used_at = ?3
                   WHERE id = ?1 AND credential = ?4";
        let values = vec![text(id), text(credential), now_value(), text(previous)];
        Ok(self.execute(sql, values).await? > 0)
    }

    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str) -> StoreResult<bool> {
        let sql = "UPDATE passkeys SET name = ?3 WHERE id = ?1 AND user_id = ?2";
        Ok(self
            .execute(sql, vec![text(id), text(user_id), text(name)])
            .await?
            == 1)
    }
}
