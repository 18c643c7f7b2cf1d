//! Second factors, recovery codes and pending second steps.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::{micros_from_now, now_micros, now_value, session_lives, text, Columns, SqliteStore};
use crate::domain::assurance::AuthMethods;
use crate::domain::opaque_token::TokenHash;
use crate::domain::password::NO_PASSWORD;
use crate::store::*;

#[async_trait]
impl MfaStore for SqliteStore {
    async fn create_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()> {
        let factor = factor.clone();
        self.write(move |tx| {
            let user_id = factor.user_id.to_string();
            tx.prepare_cached(
                "DELETE FROM mfa_factors
                 WHERE user_id = ?1 AND kind = 'totp' AND confirmed_at IS NULL",
            )?
            .execute([&user_id])?;
            tx.prepare_cached(
                "INSERT INTO mfa_factors (id, user_id, kind, secret, created_at)
                 VALUES (?1, ?2, 'totp', ?3, ?4)",
            )?
            .execute(params![
                factor.id.to_string(),
                user_id,
                factor.sealed_secret,
                factor.created_at.timestamp_micros()
            ])?;
            Ok(())
        })
        .await
    }

    async fn totp_factor(
        &self,
        user_id: Uuid,
        state: FactorState,
    ) -> StoreResult<Option<TotpFactor>> {
        let sql = "SELECT id, user_id, secret AS sealed_secret, created_at, confirmed_at
                   FROM mfa_factors
                   WHERE user_id = ?1 AND kind = 'totp' AND (confirmed_at IS NOT NULL) = ?2";
        let values = vec![text(user_id), (state == FactorState::Active).into()];
        self.query_opt(sql.into(), values, |row| {
            Ok(record!(row => TotpFactor { id, user_id, sealed_secret, created_at, confirmed_at }))
        })
        .await
    }

    async fn use_totp_step(&self, factor_id: Uuid, step: i64) -> StoreResult<bool> {
        let sql = "UPDATE mfa_factors SET last_used_step = ?2
                   WHERE id = ?1 AND confirmed_at IS NOT NULL AND last_used_step < ?2";
        Ok(self
            .execute(sql, vec![text(factor_id), step.into()])
            .await?
            == 1)
    }

    async fn confirm_totp_factor(&self, confirmation: &TotpConfirmation) -> StoreResult<bool> {
        let TotpConfirmation {
            factor_id,
            session_id,
            step,
            recovery_codes: codes,
        } = confirmation.clone();
        let confirmed = self.write(move |tx| {
            let now = now_micros();
            let owner: Option<Uuid> = tx
                .prepare_cached("SELECT user_id FROM mfa_factors WHERE id = ?1")?
                .query_row([factor_id.to_string()], |row| row.column("user_id"))
                .optional()?;
            let Some(owner) = owner else {
                return Ok(Some(false));
            };
            if !session_lives(tx, owner, session_id)? {
                return Ok(None);
            }
            // An enrolment begun while another was being confirmed must not make a second
            // active factor.
            let confirmed = tx
                .prepare_cached(
                    "UPDATE mfa_factors SET confirmed_at = ?2, last_used_step = ?3
                     WHERE id = ?1 AND confirmed_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM mfa_factors active
                                       WHERE active.user_id = mfa_factors.user_id
                                         AND active.kind = mfa_factors.kind
                                         AND active.confirmed_at IS NOT NULL)",
                )?
                .execute(params![factor_id.to_string(), now, step])?
                > 0;
            if confirmed {
                replace_codes(tx, &owner.to_string(), &codes, now)?;
            }
            Ok(Some(confirmed))
        });
        confirmed.await?.ok_or(StoreError::SessionEnded)
    }

    async fn replace_recovery_codes(&self, user_id: Uuid, codes: &[TokenHash]) -> StoreResult<()> {
        let codes = codes.to_vec();
        self.write(move |tx| replace_codes(tx, &user_id.to_string(), &codes, now_micros()))
            .await
    }

    async fn use_recovery_code(&self, user_id: Uuid, code: TokenHash) -> StoreResult<Option<u32>> {
        self.write(move |tx| {
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
            Ok(Some(u32::try_from(left).unwrap_or(0)))
        })
        .await
    }

    async fn mfa_status(&self, user_id: Uuid) -> StoreResult<MfaStatus> {
        let sql = "SELECT (SELECT confirmed_at FROM mfa_factors
                           WHERE user_id = ?1 AND kind = 'totp' AND confirmed_at IS NOT NULL)
                            AS totp_confirmed_at,
                          (SELECT count(*) FROM mfa_recovery_codes
                           WHERE user_id = ?1 AND used_at IS NULL) AS recovery_codes_left,
                          (SELECT count(*) FROM passkeys WHERE user_id = ?1) AS passkeys";
        let status = self.query_opt(sql.into(), vec![text(user_id)], |row| {
            let count = |name| -> rusqlite::Result<u32> {
                Ok(u32::try_from(row.column::<i64>(name)?).unwrap_or(0))
            };
            let (recovery_codes_left, passkeys) =
                (count("recovery_codes_left")?, count("passkeys")?);
            Ok(record!(row => MfaStatus { totp_confirmed_at; recovery_codes_left, passkeys }))
        });
        Ok(status.await?.unwrap_or_default())
    }

    async fn remove_factors(&self, user_id: Uuid, which: FactorChoice) -> StoreResult<bool> {
        let (removed, last_way_in) = self.write(move |tx| {
            let user = user_id.to_string();
            let mut removed = 0;
            if matches!(which, FactorChoice::Totp | FactorChoice::All) {
                // Pending enrolments go too; only an active factor counts as removed.
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
            let mut last_way_in = false;
            if which != FactorChoice::Totp {
                // One passkey goes only while the account keeps another way in.
                let deleted = tx
                    .prepare_cached(
                        "DELETE FROM passkeys WHERE user_id = ?1 AND (?2 IS NULL OR id = ?2)
                           AND (?2 IS NULL
                                OR EXISTS (SELECT 1 FROM users WHERE id = ?1 AND password_hash <> ?3)
                                OR EXISTS (SELECT 1 FROM passkeys other
                                           WHERE other.user_id = ?1 AND other.id <> ?2)
                                OR EXISTS (SELECT 1 FROM identities WHERE user_id = ?1))",
                    )?
                    .execute(params![user, passkey, NO_PASSWORD])?;
                if deleted == 0 && passkey.is_some() {
                    last_way_in = tx
                        .prepare_cached(
                            "SELECT EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?1 AND id = ?2)",
                        )?
                        .query_row(params![user, passkey], |row| row.get(0))?;
                }
                removed += deleted;
            }
            tx.prepare_cached(
                "DELETE FROM mfa_recovery_codes WHERE user_id = ?1
                   AND NOT EXISTS (SELECT 1 FROM mfa_factors
                                   WHERE user_id = ?1 AND confirmed_at IS NOT NULL)
                   AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?1)",
            )?
            .execute([&user])?;
            Ok((removed > 0, last_way_in))
        })
        .await?;
        if last_way_in {
            return Err(StoreError::LastWayIn);
        }
        Ok(removed)
    }

    async fn create_mfa_challenge(&self, challenge: &NewMfaChallenge) -> StoreResult<()> {
        let sql =
            "INSERT INTO mfa_challenges (token_hash, user_id, methods, created_at, expires_at,
                                         session_epoch)
             VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, (SELECT session_epoch FROM users WHERE id = ?2)))";
        let values = vec![
            challenge.hash.to_vec().into(),
            text(challenge.user_id),
            text(challenge.methods.to_stored()),
            now_value(),
            micros_from_now(challenge.ttl_seconds),
            challenge.epoch.map(|epoch| epoch.0).into(),
        ];
        self.execute(sql, values).await?;
        Ok(())
    }

    async fn attempt_mfa_challenge(
        &self,
        hash: TokenHash,
        max_attempts: u32,
    ) -> StoreResult<Option<MfaChallenge>> {
        let returning = "user_id, methods, session_epoch";
        let sql = super::attempt_statement("mfa_challenges", "token_hash", returning);
        let values = vec![hash.to_vec().into(), now_value(), max_attempts.into()];
        self.query_opt(sql, values, |row| {
            let methods = AuthMethods::parse(&row.column::<String>("methods")?);
            let epoch = SessionEpoch(row.column("session_epoch")?);
            Ok(record!(row => MfaChallenge { user_id; methods, epoch }))
        })
        .await
    }

    async fn consume_mfa_challenge(&self, hash: TokenHash) -> StoreResult<bool> {
        let sql = "UPDATE mfa_challenges SET consumed_at = ?2
                   WHERE token_hash = ?1 AND consumed_at IS NULL";
        Ok(self
            .execute(sql, vec![hash.to_vec().into(), now_value()])
            .await?
            == 1)
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
