//! Readiness, pool metrics and the janitor's purges.

use async_trait::async_trait;

use super::{bounded, ttl, PostgresStore};
use crate::store::*;

#[async_trait]
impl MaintenanceStore for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        let client = self.client().await?;
        bounded(async { Ok(client.simple_query("SELECT 1").await?) }).await?;
        Ok(())
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        })
    }

    async fn purge(&self, batch: PurgeBatch) -> StoreResult<u64> {
        let (table, key) = (batch.target.name(), batch.target.key());
        let sql = format!(
            "WITH bounds AS (SELECT now() AS now, now() - make_interval(secs => $1) AS cutoff)
             DELETE FROM {table} WHERE {key} IN (
                 SELECT {key} FROM {table}, bounds WHERE {} LIMIT $2)",
            batch.target.dead_rows()
        );
        let retention = ttl(batch.retention_seconds);
        self.execute(&sql, &[&retention, &i64::from(batch.limit)])
            .await
    }
}
