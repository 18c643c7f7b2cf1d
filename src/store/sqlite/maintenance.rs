//! Readiness and the janitor's purges.

use async_trait::async_trait;

use super::{now_value, seconds_to_micros, SqliteStore};
use crate::store::*;

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.call(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn purge(&self, batch: PurgeBatch) -> StoreResult<u64> {
        let table = batch.target.name();
        let sql = format!(
            "WITH bounds(now, cutoff) AS (SELECT ?1, ?1 - ?2)
             DELETE FROM {table} WHERE rowid IN (
                 SELECT {table}.rowid FROM {table}, bounds WHERE {} LIMIT ?3)",
            batch.target.dead_rows()
        );
        let retention = seconds_to_micros(batch.retention_seconds);
        let values = vec![now_value(), retention.into(), i64::from(batch.limit).into()];
        let deleted = self
            .call(move |c| {
                Ok(c.prepare_cached(&sql)?
                    .execute(rusqlite::params_from_iter(values))?)
            })
            .await?;
        Ok(deleted as u64)
    }
}
