//! Emailed one-time tokens and their follow-ups.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::outbox::insert_email;
use super::{ttl, PostgresStore};
use crate::domain::one_time::{self, OneTimeAction, OneTimeUse, StoredOneTimeToken, TokenKind};
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

#[async_trait]
impl OneTimeTokenStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn create_one_time_token(
        &self,
        token: &NewOneTimeToken,
        email: Option<&OutboxEmail>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_token(&tx, token).await?;
        if let Some(email) = email {
            insert_email(&tx, email).await?;
        }
        Ok(tx.commit().await?)
    }

    #[tracing::instrument(skip_all)]
    async fn one_time_token(
        &self,
        hash: TokenHash,
        wanted: &OneTimeUse<'_>,
        action: OneTimeAction,
    ) -> Result<Option<ConsumedToken>, StoreError> {
        let mut client = self.client().await?;
        if action == OneTimeAction::Peek {
            return Ok(read_token(&client, &hash, false)
                .await?
                .filter(|row| one_time::usable(&row.state, wanted, row.now))
                .map(|row| row.token));
        }
        let tx = client.transaction().await?;
        // The row lock makes concurrent uses queue: the second sees the first one's use.
        let Some(row) = read_token(&tx, &hash, true)
            .await?
            .filter(|row| one_time::usable(&row.state, wanted, row.now))
        else {
            return Ok(None);
        };
        let update = tx
            .prepare_cached("UPDATE one_time_tokens SET consumed_at = now() WHERE token_hash = $1")
            .await?;
        tx.execute(&update, &[&hash.as_slice()]).await?;
        tx.commit().await?;
        Ok(Some(row.token))
    }
}

pub(super) async fn insert_token(
    tx: &deadpool_postgres::Transaction<'_>,
    token: &NewOneTimeToken,
) -> Result<(), StoreError> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO one_time_tokens (token_hash, kind, user_id, email, metadata, expires_at, follow_up)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)",
        )
        .await?;
    tx.execute(
        &insert,
        &[
            &token.hash.as_slice(),
            &token.kind.as_str(),
            &token.user_id,
            &token.email,
            &token.metadata,
            &ttl(token.ttl_seconds),
            &token.follow_up,
        ],
    )
    .await?;
    Ok(())
}

/// A token's row as the rule needs it and as the caller gets it, with the database's clock.
struct TokenRow {
    state: StoredOneTimeToken,
    token: ConsumedToken,
    now: DateTime<Utc>,
}

/// A token's row, locked for update when `lock`.
async fn read_token(
    client: &impl GenericClient,
    hash: &TokenHash,
    lock: bool,
) -> Result<Option<TokenRow>, StoreError> {
    let sql = if lock {
        "SELECT kind, user_id, email, metadata, consumed_at IS NOT NULL, expires_at, follow_up, now()
         FROM one_time_tokens WHERE token_hash = $1 FOR UPDATE"
    } else {
        "SELECT kind, user_id, email, metadata, consumed_at IS NOT NULL, expires_at, follow_up, now()
         FROM one_time_tokens WHERE token_hash = $1"
    };
    let statement = client.prepare_cached(sql).await?;
    let Some(row) = client.query_opt(&statement, &[&hash.as_slice()]).await? else {
        return Ok(None);
    };
    let kind: String = row.try_get(0)?;
    let kind = TokenKind::parse(&kind)
        .ok_or_else(|| StoreError::Backend(format!("unknown token kind {kind:?}")))?;
    let token = ConsumedToken {
        kind,
        user_id: row.try_get(1)?,
        email: row.try_get(2)?,
        metadata: row.try_get(3)?,
    };
    let state = StoredOneTimeToken {
        kind,
        consumed: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        follow_up: row.try_get(6)?,
    };
    Ok(Some(TokenRow {
        state,
        token,
        now: row.try_get(7)?,
    }))
}
