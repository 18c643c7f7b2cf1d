//! Stored signing keys.

use async_trait::async_trait;

use super::{corrupt, now_value, text, Columns, SqliteStore};
use crate::domain::jwt_algorithm::JwtAlgorithm;
use crate::store::*;

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let sql = "SELECT kid, algorithm, private_key, public_jwk, created_at
                   FROM signing_keys ORDER BY created_at";
        self.query(sql.into(), Vec::new(), |row| {
            let algorithm: String = row.column("algorithm")?;
            let algorithm = JwtAlgorithm::parse(&algorithm).ok_or_else(|| corrupt("algorithm"))?;
            Ok(record!(row => StoredSigningKey { kid, private_key, public_jwk, created_at; algorithm }))
        })
        .await
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let sql = "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, created_at)
                   VALUES (?1, ?2, ?3, ?4, ?5)";
        let values = vec![
            text(&key.kid),
            text(key.algorithm.name()),
            key.private_key.clone().into(),
            text(&key.public_jwk),
            now_value(),
        ];
        self.execute(sql, values).await?;
        Ok(())
    }
}
