//! Emailed one-time tokens and their follow-ups.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::outbox::insert_email;
use super::{begin, commit, execute, query_opt, ttl, Columns, Params, PostgresStore};
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
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        if replaces_older(token, email) {
            let kind = token.kind.as_str();
            match token.user_id {
                Some(user_id) => {
                    let retire = "UPDATE one_time_tokens SET consumed_at = now()
                                  WHERE user_id = $1 AND kind = $2 AND consumed_at IS NULL";
                    execute(&tx, retire, &[&user_id, &kind]).await?
                }
                None => {
                    let retire = "UPDATE one_time_tokens SET consumed_at = now()
                                  WHERE user_id IS NULL AND email = $1 AND kind = $2
                                    AND consumed_at IS NULL";
                    execute(&tx, retire, &[&token.email, &kind]).await?
                }
            };
        }
        insert_token(&tx, token).await?;
        if let Some(email) = email {
            insert_email(&tx, email).await?;
        }
        commit(tx).await
    }

    async fn retire_one_time_tokens(&self, user_id: Uuid, kind: TokenKind) -> StoreResult<()> {
        let retire = "UPDATE one_time_tokens SET consumed_at = now()
                      WHERE user_id = $1 AND kind = $2 AND consumed_at IS NULL";
        self.execute(retire, &[&user_id, &kind.as_str()]).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn one_time_token(
        &self,
        hash: TokenHash,
        wanted: &OneTimeUse<'_>,
        action: OneTimeAction,
    ) -> StoreResult<Option<ConsumedToken>> {
        let mut client = self.client().await?;
        if action == OneTimeAction::Peek {
            return Ok(read_token(&client, &hash, false)
                .await?
                .filter(|row| one_time::usable(&row.state, wanted, row.now))
                .map(|row| row.token));
        }
        let tx = begin(&mut client).await?;
        // The row lock makes concurrent uses queue: the second sees the first one's use.
        let Some(row) = read_token(&tx, &hash, true)
            .await?
            .filter(|row| one_time::usable(&row.state, wanted, row.now))
        else {
            return Ok(None);
        };
        let consume = "UPDATE one_time_tokens SET consumed_at = now() WHERE token_hash = $1";
        execute(&tx, consume, &[&hash.as_slice()]).await?;
        commit(tx).await?;
        Ok(Some(row.token))
    }
}

pub(super) async fn insert_token(
    tx: &deadpool_postgres::Transaction<'_>,
    token: &NewOneTimeToken,
) -> StoreResult<()> {
    let insert = "INSERT INTO one_time_tokens (token_hash, kind, user_id, email, metadata, expires_at, follow_up)
                  VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)";
    let (hash, kind, lifetime) = (
        token.hash.as_slice(),
        token.kind.as_str(),
        ttl(token.ttl_seconds),
    );
    let values: Params = &[
        &hash,
        &kind,
        &token.user_id,
        &token.email,
        &token.metadata,
        &lifetime,
        &token.follow_up,
    ];
    execute(tx, insert, values).await?;
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
) -> StoreResult<Option<TokenRow>> {
    let sql = if lock {
        "SELECT kind, user_id, email, metadata, consumed_at IS NOT NULL AS consumed, expires_at,
                follow_up, now() AS now
         FROM one_time_tokens WHERE token_hash = $1 FOR UPDATE"
    } else {
        "SELECT kind, user_id, email, metadata, consumed_at IS NOT NULL AS consumed, expires_at,
                follow_up, now() AS now
         FROM one_time_tokens WHERE token_hash = $1"
    };
    let Some(row) = query_opt(client, sql, &[&hash.as_slice()]).await? else {
        return Ok(None);
    };
    let kind: String = row.column("kind")?;
    let kind = TokenKind::parse(&kind)
        .ok_or_else(|| StoreError::Backend(format!("unknown token kind {kind:?}")))?;
    let token = record!(row => ConsumedToken { user_id, email, metadata, expires_at; kind });
    let state = record!(row => StoredOneTimeToken { consumed, expires_at, follow_up; kind });
    Ok(Some(record!(row => TokenRow { now; state, token })))
}
