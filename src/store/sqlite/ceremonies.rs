//! The single-use, expiring state of ceremonies of several requests.

use async_trait::async_trait;

use super::{micros_from_now, now_value, text, Columns, SqliteStore};
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

#[async_trait]
impl CeremonyStore for SqliteStore {
    async fn create_ceremony(&self, ceremony: &NewCeremony) -> StoreResult<bool> {
        let sql =
            "INSERT INTO ceremonies (token_hash, kind, user_id, state, created_at, expires_at)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (token_hash) DO NOTHING";
        let values = vec![
            ceremony.hash.to_vec().into(),
            text(ceremony.kind.as_str()),
            ceremony.user_id.map(|id| id.to_string()).into(),
            text(&ceremony.state),
            now_value(),
            micros_from_now(ceremony.ttl_seconds),
        ];
        Ok(self.execute(sql, values).await? == 1)
    }

    async fn take_ceremony(
        &self,
        hash: TokenHash,
        kind: CeremonyKind,
    ) -> StoreResult<Option<Ceremony>> {
        let sql = "DELETE FROM ceremonies WHERE token_hash = ?1 AND kind = ?2
                   RETURNING user_id, state, expires_at > ?3 AS live";
        let values = vec![hash.to_vec().into(), text(kind.as_str()), now_value()];
        let taken = self.query_opt(sql.into(), values, |row| {
            let live: bool = row.column("live")?;
            Ok(live.then_some(record!(row => Ceremony { user_id, state })))
        });
        Ok(taken.await?.flatten())
    }
}
