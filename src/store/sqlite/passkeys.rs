//! Passkeys and WebAuthn ceremony state.

use async_trait::async_trait;
use uuid::Uuid;

use super::{micros_from_now, now_value, text, Columns, SqliteStore};
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

#[async_trait]
impl PasskeyStore for SqliteStore {
    async fn create_ceremony(&self, ceremony: &NewCeremony) -> StoreResult<()> {
        let sql = "INSERT INTO webauthn_ceremonies (token_hash, kind, user_id, state, created_at,
                                                    expires_at)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
        let values = vec![
            ceremony.hash.to_vec().into(),
            text(ceremony.kind.as_str()),
            ceremony.user_id.map(|id| id.to_string()).into(),
            text(&ceremony.state),
            now_value(),
            micros_from_now(ceremony.ttl_seconds),
        ];
        self.execute(sql, values).await?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        hash: TokenHash,
        kind: CeremonyKind,
    ) -> StoreResult<Option<Ceremony>> {
        let sql = "DELETE FROM webauthn_ceremonies WHERE token_hash = ?1 AND kind = ?2
                   RETURNING user_id, state, expires_at > ?3 AS live";
        let values = vec![hash.to_vec().into(), text(kind.as_str()), now_value()];
        let taken = self.query_opt(sql.into(), values, |row| {
            let live: bool = row.column("live")?;
            Ok(live.then_some(record!(row => Ceremony { user_id, state })))
        });
        Ok(taken.await?.flatten())
    }

    async fn add_passkey(&self, passkey: &StoredPasskey) -> StoreResult<bool> {
        let sql = "INSERT INTO passkeys (id, user_id, credential_id, name, credential, created_at)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (credential_id) DO NOTHING";
        let values = vec![
            text(passkey.id),
            text(passkey.user_id),
            passkey.credential_id.clone().into(),
            text(&passkey.name),
            text(&passkey.credential),
            passkey.created_at.timestamp_micros().into(),
        ];
        Ok(self.execute(sql, values).await? == 1)
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

    async fn record_passkey_use(&self, id: Uuid, credential: &str) -> StoreResult<()> {
        let sql = "UPDATE passkeys SET credential = ?2, last_used_at = ?3 WHERE id = ?1";
        self.execute(sql, vec![text(id), text(credential), now_value()])
            .await?;
        Ok(())
    }

    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str) -> StoreResult<bool> {
        let sql = "UPDATE passkeys SET name = ?3 WHERE id = ?1 AND user_id = ?2";
        Ok(self
            .execute(sql, vec![text(id), text(user_id), text(name)])
            .await?
            == 1)
    }
}
