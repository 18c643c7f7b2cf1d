//! Second factors, recovery codes and pending second steps.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use super::{now_micros, seconds_to_micros, text, time_at, uuid_at, SqliteStore};
use crate::domain::assurance::AuthMethods;
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

#[async_trait]
impl MfaStore for SqliteStore {
    async fn create_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()> {
        let factor = factor.clone();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "DELETE FROM mfa_factors WHERE user_id = ?1 AND kind = 'totp' AND confirmed_at IS NULL",
            )?
            .execute([factor.user_id.to_string()])?;
            tx.prepare_cached(
                "INSERT INTO mfa_factors (id, user_id, kind, secret, created_at)
                 VALUES (?1, ?2, 'totp', ?3, ?4)",
            )?
            .execute(params![
                factor.id.to_string(),
                factor.user_id.to_string(),
                factor.sealed_secret,
                factor.created_at.timestamp_micros()
            ])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn totp_factor(
        &self,
        user_id: Uuid,
        state: FactorState,
    ) -> StoreResult<Option<TotpFactor>> {
        let active = state == FactorState::Active;
        self.call(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, user_id, secret, created_at, confirmed_at FROM mfa_factors
                 WHERE user_id = ?1 AND kind = 'totp' AND (confirmed_at IS NOT NULL) = ?2",
            )?
            .query_row(params![user_id.to_string(), active], |row| {
                Ok(TotpFactor {
                    id: uuid_at(row, 0)?,
                    user_id: uuid_at(row, 1)?,
                    sealed_secret: row.get(2)?,
                    created_at: time_at(row, 3)?,
                    confirmed_at: row
                        .get::<_, Option<i64>>(4)?
                        .map(|_| time_at(row, 4))
                        .transpose()?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn use_totp_step(&self, factor_id: Uuid, step: i64) -> StoreResult<bool> {
        let sql = "UPDATE mfa_factors SET last_used_step = ?2
                   WHERE id = ?1 AND confirmed_at IS NOT NULL AND last_used_step < ?2";
        let values = vec![text(factor_id), rusqlite::types::Value::Integer(step)];
        Ok(self.execute(sql, values).await? == 1)
    }

    async fn confirm_totp_factor(&self, confirmation: &TotpConfirmation) -> StoreResult<bool> {
        let TotpConfirmation {
            factor_id,
            step,
            recovery_codes: codes,
        } = confirmation.clone();
        self.call(move |c| {
            let now = now_micros();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let confirmed = tx
                .prepare_cached(
                    "UPDATE mfa_factors SET confirmed_at = ?2, last_used_step = ?3
                     WHERE id = ?1 AND confirmed_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM mfa_factors active
                                       WHERE active.user_id = mfa_factors.user_id
                                         AND active.kind = mfa_factors.kind
                                         AND active.confirmed_at IS NOT NULL)
                     RETURNING user_id",
                )?
                .query_row(params![factor_id.to_string(), now, step], |row| {
                    row.get::<_, String>(0)
                })
                .optional()?;
            let Some(user_id) = confirmed else {
                return Ok(false);
            };
            replace_codes(&tx, &user_id, &codes, now)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn replace_recovery_codes(&self, user_id: Uuid, codes: &[TokenHash]) -> StoreResult<()> {
        let codes = codes.to_vec();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            replace_codes(&tx, &user_id.to_string(), &codes, now_micros())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn use_recovery_code(&self, user_id: Uuid, code: TokenHash) -> StoreResult<Option<u32>> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let used = tx
                .prepare_cached(
                    "UPDATE mfa_recovery_codes SET used_at = ?3
                     WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
                )?
                .execute(params![user_id.to_string(), code.as_slice(), now_micros()])?;
            if used == 0 {
                return Ok(None);
            }
            let left: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
                )?
                .query_row([user_id.to_string()], |row| row.get(0))?;
            tx.commit()?;
            Ok(Some(u32::try_from(left).unwrap_or(0)))
        })
        .await
    }

    async fn mfa_status(&self, user_id: Uuid) -> StoreResult<MfaStatus> {
        self.call(move |c| {
            Ok(c.prepare_cached(
                "SELECT (SELECT confirmed_at FROM mfa_factors
                         WHERE user_id = ?1 AND kind = 'totp' AND confirmed_at IS NOT NULL),
                        (SELECT count(*) FROM mfa_recovery_codes WHERE user_id = ?1 AND used_at IS NULL),
                        (SELECT count(*) FROM passkeys WHERE user_id = ?1)",
            )?
            .query_row([user_id.to_string()], |row| {
                let count =
                    |index| -> rusqlite::Result<u32> { Ok(u32::try_from(row.get::<_, i64>(index)?).unwrap_or(0)) };
                Ok(MfaStatus {
                    totp_confirmed_at: row
                        .get::<_, Option<i64>>(0)?
                        .map(|_| time_at(row, 0))
                        .transpose()?,
                    recovery_codes_left: count(1)?,
                    passkeys: count(2)?,
                })
            })?)
        })
        .await
    }

    async fn remove_factors(&self, user_id: Uuid, which: FactorChoice) -> StoreResult<bool> {
        self.call(move |c| {
            let user = user_id.to_string();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut removed = 0;
            if matches!(which, FactorChoice::Totp | FactorChoice::All) {
                removed += tx
                    .prepare_cached(
                        "DELETE FROM mfa_factors WHERE user_id = ?1 AND confirmed_at IS NOT NULL",
                    )?
                    .execute([&user])?;
                tx.prepare_cached("DELETE FROM mfa_factors WHERE user_id = ?1")?
                    .execute([&user])?;
            }
            let passkey = match which {
                FactorChoice::Passkey(id) => Some(id.to_string()),
                _ => None,
            };
            if which != FactorChoice::Totp {
                removed += tx
                    .prepare_cached(
                        "DELETE FROM passkeys WHERE user_id = ?1 AND (?2 IS NULL OR id = ?2)",
                    )?
                    .execute(params![user, passkey])?;
            }
            tx.prepare_cached(
                "DELETE FROM mfa_recovery_codes WHERE user_id = ?1
                   AND NOT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = ?1 AND confirmed_at IS NOT NULL)
                   AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?1)",
            )?
            .execute([&user])?;
            tx.commit()?;
            Ok(removed > 0)
        })
        .await
    }

    async fn create_mfa_challenge(&self, challenge: &NewMfaChallenge) -> StoreResult<()> {
        let now = now_micros();
        let sql =
            "INSERT INTO mfa_challenges (token_hash, user_id, methods, created_at, expires_at)
                   VALUES (?1, ?2, ?3, ?4, ?5)";
        let values = vec![
            rusqlite::types::Value::Blob(challenge.hash.to_vec()),
            text(challenge.user_id),
            text(challenge.methods.to_stored()),
            rusqlite::types::Value::Integer(now),
            rusqlite::types::Value::Integer(
                now.saturating_add(seconds_to_micros(challenge.ttl_seconds)),
            ),
        ];
        self.execute(sql, values).await?;
        Ok(())
    }

    async fn attempt_mfa_challenge(
        &self,
        hash: TokenHash,
        max_attempts: u32,
    ) -> StoreResult<Option<MfaChallenge>> {
        self.call(move |c| {
            Ok(c.prepare_cached(
                "UPDATE mfa_challenges SET attempts = attempts + 1
                 WHERE token_hash = ?1 AND consumed_at IS NULL AND expires_at > ?2 AND attempts < ?3
                 RETURNING user_id, methods",
            )?
            .query_row(
                params![hash.as_slice(), now_micros(), max_attempts],
                |row| {
                    Ok(MfaChallenge {
                        user_id: uuid_at(row, 0)?,
                        methods: AuthMethods::parse(&row.get::<_, String>(1)?),
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn consume_mfa_challenge(&self, hash: TokenHash) -> StoreResult<bool> {
        let sql = "UPDATE mfa_challenges SET consumed_at = ?2
                   WHERE token_hash = ?1 AND consumed_at IS NULL";
        let values = vec![
            rusqlite::types::Value::Blob(hash.to_vec()),
            rusqlite::types::Value::Integer(now_micros()),
        ];
        Ok(self.execute(sql, values).await? == 1)
    }
}

fn replace_codes(
    tx: &rusqlite::Transaction<'_>,
    user_id: &str,
    codes: &[TokenHash],
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM mfa_recovery_codes WHERE user_id = ?1")?
        .execute([user_id])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES (?1, ?2, ?3)",
    )?;
    for code in codes {
        insert.execute(params![user_id, code.as_slice(), now])?;
    }
    Ok(())
}
