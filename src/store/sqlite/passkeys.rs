//! Passkeys and WebAuthn ceremony state.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::{now_micros, seconds_to_micros, text, time_at, uuid_at, SqliteStore};
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

fn passkey_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredPasskey> {
    Ok(StoredPasskey {
        id: uuid_at(row, 0)?,
        user_id: uuid_at(row, 1)?,
        credential_id: row.get(2)?,
        name: row.get(3)?,
        credential: row.get(4)?,
        created_at: time_at(row, 5)?,
        last_used_at: row
            .get::<_, Option<i64>>(6)?
            .map(|_| time_at(row, 6))
            .transpose()?,
    })
}

#[async_trait]
impl PasskeyStore for SqliteStore {
    async fn create_ceremony(&self, ceremony: &NewCeremony) -> StoreResult<()> {
        let now = now_micros();
        let sql = "INSERT INTO webauthn_ceremonies (token_hash, kind, user_id, state, created_at, expires_at)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
        let values = vec![
            rusqlite::types::Value::Blob(ceremony.hash.to_vec()),
            text(ceremony.kind.as_str()),
            ceremony.user_id.map_or(rusqlite::types::Value::Null, text),
            text(&ceremony.state),
            rusqlite::types::Value::Integer(now),
            rusqlite::types::Value::Integer(
                now.saturating_add(seconds_to_micros(ceremony.ttl_seconds)),
            ),
        ];
        self.execute(sql, values).await?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        hash: TokenHash,
        kind: CeremonyKind,
    ) -> StoreResult<Option<Ceremony>> {
        self.call(move |c| {
            let taken = c
                .prepare_cached(
                    "DELETE FROM webauthn_ceremonies WHERE token_hash = ?1 AND kind = ?2
                     RETURNING user_id, state, expires_at > ?3",
                )?
                .query_row(
                    params![hash.as_slice(), kind.as_str(), now_micros()],
                    |row| {
                        let user_id = match row.get::<_, Option<String>>(0)? {
                            Some(_) => Some(uuid_at(row, 0)?),
                            None => None,
                        };
                        let live: bool = row.get(2)?;
                        Ok(live.then(|| Ceremony {
                            user_id,
                            state: row.get(1).unwrap_or_default(),
                        }))
                    },
                )
                .optional()?;
            Ok(taken.flatten())
        })
        .await
    }

    async fn add_passkey(&self, passkey: &StoredPasskey) -> StoreResult<bool> {
        let sql = "INSERT INTO passkeys (id, user_id, credential_id, name, credential, created_at)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (credential_id) DO NOTHING";
        let values = vec![
            text(passkey.id),
            text(passkey.user_id),
            rusqlite::types::Value::Blob(passkey.credential_id.clone()),
            text(&passkey.name),
            text(&passkey.credential),
            rusqlite::types::Value::Integer(passkey.created_at.timestamp_micros()),
        ];
        Ok(self.execute(sql, values).await? == 1)
    }

    async fn passkeys_of(&self, user_id: Uuid) -> StoreResult<Vec<StoredPasskey>> {
        self.call(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT id, user_id, credential_id, name, credential, created_at, last_used_at
                 FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id",
            )?;
            let passkeys = statement
                .query_map([user_id.to_string()], passkey_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(passkeys)
        })
        .await
    }

    async fn record_passkey_use(&self, id: Uuid, credential: &str) -> StoreResult<()> {
        let sql = "UPDATE passkeys SET credential = ?2, last_used_at = ?3 WHERE id = ?1";
        let values = vec![
            text(id),
            text(credential),
            rusqlite::types::Value::Integer(now_micros()),
        ];
        self.execute(sql, values).await?;
        Ok(())
    }

    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str) -> StoreResult<bool> {
        let sql = "UPDATE passkeys SET name = ?3 WHERE id = ?1 AND user_id = ?2";
        let values = vec![text(id), text(user_id), text(name)];
        Ok(self.execute(sql, values).await? == 1)
    }
}
