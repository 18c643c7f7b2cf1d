//! Passkeys and WebAuthn ceremony state.

use async_trait::async_trait;
use uuid::Uuid;

use super::{ttl, PostgresStore};
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

const PASSKEY_COLUMNS: &str =
    "id, user_id, credential_id, name, credential, created_at, last_used_at";

fn passkey_from_row(row: &tokio_postgres::Row) -> Result<StoredPasskey, StoreError> {
    Ok(StoredPasskey {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        credential_id: row.try_get(2)?,
        name: row.try_get(3)?,
        credential: row.try_get(4)?,
        created_at: row.try_get(5)?,
        last_used_at: row.try_get(6)?,
    })
}

#[async_trait]
impl PasskeyStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn create_ceremony(&self, ceremony: &NewCeremony) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO webauthn_ceremonies (token_hash, kind, user_id, state, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
            &[
                &ceremony.hash.as_slice(),
                &ceremony.kind.as_str(),
                &ceremony.user_id,
                &ceremony.state,
                &ttl(ceremony.ttl_seconds),
            ],
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn take_ceremony(
        &self,
        hash: TokenHash,
        kind: CeremonyKind,
    ) -> Result<Option<Ceremony>, StoreError> {
        let row = self
            .query_opt(
                "DELETE FROM webauthn_ceremonies WHERE token_hash = $1 AND kind = $2
                 RETURNING user_id, state, expires_at > now()",
                &[&hash.as_slice(), &kind.as_str()],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if !row.try_get::<_, bool>(2)? {
            return Ok(None);
        }
        Ok(Some(Ceremony {
            user_id: row.try_get(0)?,
            state: row.try_get(1)?,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn add_passkey(&self, passkey: &StoredPasskey) -> Result<bool, StoreError> {
        let added = self
            .execute(
                "INSERT INTO passkeys (id, user_id, credential_id, name, credential, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (credential_id) DO NOTHING",
                &[
                    &passkey.id,
                    &passkey.user_id,
                    &passkey.credential_id,
                    &passkey.name,
                    &passkey.credential,
                    &passkey.created_at,
                ],
            )
            .await?;
        Ok(added == 1)
    }

    async fn passkeys_of(&self, user_id: Uuid) -> Result<Vec<StoredPasskey>, StoreError> {
        let sql = format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
        );
        let rows = self.query(&sql, &[&user_id]).await?;
        rows.iter().map(passkey_from_row).collect()
    }

    async fn record_passkey_use(&self, id: Uuid, credential: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE passkeys SET credential = $2, last_used_at = now() WHERE id = $1",
            &[&id, &credential],
        )
        .await?;
        Ok(())
    }

    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2",
                &[&id, &user_id, &name],
            )
            .await?;
        Ok(changed == 1)
    }
}
