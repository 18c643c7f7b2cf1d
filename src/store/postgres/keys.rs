//! Stored signing keys.

use async_trait::async_trait;

use super::PostgresStore;
use crate::domain::jwt_algorithm::JwtAlgorithm;
use crate::store::*;

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows = self.query("SELECT kid, algorithm, private_key, public_jwk, created_at FROM signing_keys ORDER BY created_at", &[])
            .await?;
        rows.iter()
            .map(|row| {
                let algorithm: String = row.try_get(1)?;
                Ok(StoredSigningKey {
                    kid: row.try_get(0)?,
                    algorithm: JwtAlgorithm::parse(&algorithm).ok_or_else(|| {
                        StoreError::Backend(format!("unknown key algorithm {algorithm:?}"))
                    })?,
                    private_key: row.try_get(2)?,
                    public_jwk: row.try_get(3)?,
                    created_at: row.try_get(4)?,
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
}
