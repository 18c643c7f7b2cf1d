//! Stored signing keys.

use async_trait::async_trait;

use super::{Columns, PostgresStore};
use crate::domain::jwt_algorithm::JwtAlgorithm;
use crate::store::*;

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let rows = self.query("SELECT kid, algorithm, private_key, public_jwk, created_at FROM signing_keys ORDER BY created_at", &[])
            .await?;
        rows.iter()
            .map(|row| {
                let algorithm: String = row.column("algorithm")?;
                let algorithm = JwtAlgorithm::parse(&algorithm).ok_or_else(|| {
                    StoreError::Backend(format!("unknown key algorithm {algorithm:?}"))
                })?;
                Ok(record!(row => StoredSigningKey { kid, private_key, public_jwk, created_at; algorithm }))
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
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
