//! The single-use, expiring state of ceremonies of several requests.

use async_trait::async_trait;

use super::{ttl, Columns, PostgresStore};
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

#[async_trait]
impl CeremonyStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn create_ceremony(&self, ceremony: &NewCeremony) -> StoreResult<bool> {
        let insert = "INSERT INTO ceremonies (token_hash, kind, user_id, state, expires_at)
                      VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
                      ON CONFLICT (token_hash) DO NOTHING";
        let (hash, kind) = (ceremony.hash.as_slice(), ceremony.kind.as_str());
        let lifetime = ttl(ceremony.ttl_seconds);
        let values: super::Params = &[&hash, &kind, &ceremony.user_id, &ceremony.state, &lifetime];
        Ok(self.execute(insert, values).await? == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn take_ceremony(
        &self,
        hash: TokenHash,
        kind: CeremonyKind,
    ) -> StoreResult<Option<Ceremony>> {
        let row = self
            .query_opt(
                "DELETE FROM ceremonies WHERE token_hash = $1 AND kind = $2
                 RETURNING user_id, state, expires_at > now() AS live",
                &[&hash.as_slice(), &kind.as_str()],
            )
            .await?;
        match row {
            Some(row) if row.column("live")? => {
                Ok(Some(record!(row => Ceremony { user_id, state })))
            }
            _ => Ok(None),
        }
    }
}
