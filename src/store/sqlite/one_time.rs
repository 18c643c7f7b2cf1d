//! Emailed one-time tokens and their follow-ups.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::outbox::insert_email;
use super::{corrupt, now_micros, seconds_to_micros, time_at, SqliteStore};
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
        let token = token.clone();
        let email = email.cloned();
        self.call(move |c| {
            let now = now_micros();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            insert_token(&tx, &token, now)?;
            if let Some(email) = &email {
                insert_email(&tx, email, now)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn one_time_token(
        &self,
        hash: TokenHash,
        wanted: &OneTimeUse<'_>,
        action: OneTimeAction,
    ) -> StoreResult<Option<ConsumedToken>> {
        let consume = action == OneTimeAction::Consume;
        let kinds = wanted.kinds.to_vec();
        let origin = wanted.origin;
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
            let Some(row) = read_token(&tx, &hash)?
                .filter(|row| one_time::usable(&row.state, &wanted, clock(now)))
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
    tx.prepare_cached(
        "INSERT INTO one_time_tokens (token_hash, kind, user_id, email, metadata, created_at, expires_at, follow_up)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        token.hash.as_slice(),
        token.kind.as_str(),
        token.user_id.map(|id| id.to_string()),
        token.email,
        token.metadata,
        now,
        now.saturating_add(seconds_to_micros(token.ttl_seconds)),
        token.follow_up
    ])?;
    Ok(())
}

fn clock(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
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
        "SELECT kind, user_id, email, metadata, consumed_at IS NOT NULL, expires_at, follow_up
         FROM one_time_tokens WHERE token_hash = ?1",
    )?
    .query_row([hash.as_slice()], |row| {
        let kind: String = row.get(0)?;
        let kind = TokenKind::parse(&kind).ok_or_else(|| corrupt("token kind"))?;
        let user_id: Option<String> = row.get(1)?;
        Ok(TokenRow {
            token: ConsumedToken {
                kind,
                user_id: user_id
                    .map(|id| id.parse().map_err(|_| corrupt("uuid")))
                    .transpose()?,
                email: row.get(2)?,
                metadata: row.get(3)?,
            },
            state: StoredOneTimeToken {
                kind,
                consumed: row.get(4)?,
                expires_at: time_at(row, 5)?,
                follow_up: row.get(6)?,
            },
        })
    })
    .optional()
}
