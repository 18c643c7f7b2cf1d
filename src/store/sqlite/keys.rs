//! Stored signing keys.

use async_trait::async_trait;
use rusqlite::params;

use super::{corrupt, now_micros, time_at, SqliteStore};
use crate::domain::jwt_algorithm::JwtAlgorithm;
use crate::store::*;

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.call(|c| {
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
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let key = key.clone();
        self.call(move |c| {
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
    }
}
