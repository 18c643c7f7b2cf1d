//! Emailed one-time tokens and their follow-ups.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::outbox::insert_email;
use super::{corrupt, now_micros, now_value, seconds_to_micros, text, Columns, SqliteStore};
use crate::domain::one_time::{self, OneTimeAction, OneTimeUse, StoredOneTimeToken, TokenKind};
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

#[async_trait]
impl OneTimeTokenStore for SqliteStore {
    async fn create_one_time_token(
        &self,
        token: &NewOneTimeToken,
        email: Option<&OutboxEmail>,
    ) -> StoreResult<()> {
        let (token, email) = (token.clone(), email.cloned());
        self.write(move |tx| {
            let now = now_micros();
            if replaces_older(&token, email.as_ref()) {
                let (retire, owner) = match token.user_id {
                    Some(user_id) => (
                        "UPDATE one_time_tokens SET consumed_at = ?3
                         WHERE user_id = ?1 AND kind = ?2 AND consumed_at IS NULL",
                        user_id.to_string(),
                    ),
                    None => (
                        "UPDATE one_time_tokens SET consumed_at = ?3
                         WHERE user_id IS NULL AND email = ?1 AND kind = ?2
                           AND consumed_at IS NULL",
                        token.email.clone(),
                    ),
                };
                tx.prepare_cached(retire)?
                    .execute(params![owner, token.kind.as_str(), now])?;
            }
            insert_token(tx, &token, now)?;
            email.map_or(Ok(()), |email| insert_email(tx, &email, now))
        })
        .await
    }

    async fn retire_one_time_tokens(&self, user_id: Uuid, kind: TokenKind) -> StoreResult<()> {
        let retire = "UPDATE one_time_tokens SET consumed_at = ?3
                      WHERE user_id = ?1 AND kind = ?2 AND consumed_at IS NULL";
        let values = vec![text(user_id), text(kind.as_str()), now_value()];
        self.execute(retire, values).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn one_time_token(
        &self,
        hash: TokenHash,
        wanted: &OneTimeUse<'_>,
        action: OneTimeAction,
    ) -> StoreResult<Option<ConsumedToken>> {
        let consume = action == OneTimeAction::Consume;
        let (kinds, origin) = (wanted.kinds.to_vec(), wanted.origin);
        self.call(move |c| {
            let now = now_micros();
            // IMMEDIATE to consume: a second use waits for the first and sees it consumed.
            let behavior = if consume {
                TransactionBehavior::Immediate
            } else {
                TransactionBehavior::Deferred
            };
            let tx = c.transaction_with_behavior(behavior)?;
            let wanted = OneTimeUse {
                kinds: &kinds,
                origin,
            };
            let clock = DateTime::<Utc>::from_timestamp_micros(now).unwrap_or_default();
            let Some(row) =
                read_token(&tx, &hash)?.filter(|row| one_time::usable(&row.state, &wanted, clock))
            else {
                return Ok(None);
            };
            if consume {
                tx.prepare_cached(
                    "UPDATE one_time_tokens SET consumed_at = ?2 WHERE token_hash = ?1",
                )?
                .execute(params![hash.as_slice(), now])?;
                tx.commit()?;
            }
            Ok(Some(row.token))
        })
        .await
    }
}

pub(super) fn insert_token(
    tx: &rusqlite::Transaction<'_>,
    token: &NewOneTimeToken,
    now: i64,
) -> rusqlite::Result<()> {
    let expires_at = now.saturating_add(seconds_to_micros(token.ttl_seconds));
    let user_id = token.user_id.map(|id| id.to_string());
    tx.prepare_cached(
        "INSERT INTO one_time_tokens (token_hash, kind, user_id, email, metadata, created_at,
                                      expires_at, follow_up)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        token.hash.as_slice(),
        token.kind.as_str(),
        user_id,
        token.email,
        token.metadata,
        now,
        expires_at,
        token.follow_up
    ])?;
    Ok(())
}

/// A token's row as the rule needs it and as the caller gets it.
struct TokenRow {
    state: StoredOneTimeToken,
    token: ConsumedToken,
}

fn read_token(
    tx: &rusqlite::Transaction<'_>,
    hash: &TokenHash,
) -> rusqlite::Result<Option<TokenRow>> {
    tx.prepare_cached(
        "SELECT kind, user_id, email, metadata, consumed_at IS NOT NULL AS consumed, expires_at,
                follow_up
         FROM one_time_tokens WHERE token_hash = ?1",
    )?
    .query_row([hash.as_slice()], |row| {
        let kind: String = row.column("kind")?;
        let kind = TokenKind::parse(&kind).ok_or_else(|| corrupt("token kind"))?;
        let token = record!(row => ConsumedToken { user_id, email, metadata, expires_at; kind });
        let state = record!(row => StoredOneTimeToken { consumed, expires_at, follow_up; kind });
        Ok(TokenRow { state, token })
    })
    .optional()
}
