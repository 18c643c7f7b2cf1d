//! Second factors, recovery codes and pending second steps.

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    begin, commit, execute, exists, lock_user, lock_user_for_session, query, query_opt, ttl,
    Columns, Params, PostgresStore,
};
use crate::domain::assurance::AuthMethods;
use crate::domain::opaque_token::TokenHash;
use crate::domain::password::NO_PASSWORD;
use crate::store::*;

#[async_trait]
impl MfaStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn create_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock_user(&tx, &factor.user_id).await?;
        let drop_pending = "DELETE FROM mfa_factors
                            WHERE user_id = $1 AND kind = 'totp' AND confirmed_at IS NULL";
        execute(&tx, drop_pending, &[&factor.user_id]).await?;
        let insert = "INSERT INTO mfa_factors (id, user_id, kind, secret, created_at)
                      VALUES ($1, $2, 'totp', $3, $4)";
        let secret = &factor.sealed_secret;
        execute(
            &tx,
            insert,
            &[&factor.id, &factor.user_id, secret, &factor.created_at],
        )
        .await?;
        commit(tx).await
    }

    async fn totp_factor(
        &self,
        user_id: Uuid,
        state: FactorState,
    ) -> StoreResult<Option<TotpFactor>> {
        let row = self
            .query_opt(
                "SELECT id, user_id, secret AS sealed_secret, created_at, confirmed_at FROM mfa_factors
                 WHERE user_id = $1 AND kind = 'totp' AND (confirmed_at IS NOT NULL) = $2",
                &[&user_id, &(state == FactorState::Active)],
            )
            .await?;
        row.map(|row| {
            Ok(record!(row => TotpFactor { id, user_id, sealed_secret, created_at, confirmed_at }))
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn use_totp_step(&self, factor_id: Uuid, step: i64) -> StoreResult<bool> {
        let changed = self
            .execute(
                "UPDATE mfa_factors SET last_used_step = $2
                 WHERE id = $1 AND confirmed_at IS NOT NULL AND last_used_step < $2",
                &[&factor_id, &step],
            )
            .await?;
        Ok(changed == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn confirm_totp_factor(&self, confirmation: &TotpConfirmation) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let owner = "SELECT user_id FROM mfa_factors WHERE id = $1";
        let Some(owner) = query_opt(&tx, owner, &[&confirmation.factor_id]).await? else {
            return Ok(false);
        };
        let user_id: Uuid = owner.column("user_id")?;
        lock_user_for_session(&tx, &user_id, &confirmation.session_id).await?;
        // An enrolment begun while another was being confirmed must not make a second active
        // factor (the unique index would refuse it as an error).
        let confirm = "UPDATE mfa_factors SET confirmed_at = now(), last_used_step = $2
                       WHERE id = $1 AND confirmed_at IS NULL
                         AND NOT EXISTS (SELECT 1 FROM mfa_factors active
                                         WHERE active.user_id = mfa_factors.user_id
                                           AND active.kind = mfa_factors.kind
                                           AND active.confirmed_at IS NOT NULL)";
        let values: Params = &[&confirmation.factor_id, &confirmation.step];
        if execute(&tx, confirm, values).await? == 0 {
            return Ok(false);
        }
        replace_codes(&tx, user_id, &confirmation.recovery_codes).await?;
        commit(tx).await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn replace_recovery_codes(&self, user_id: Uuid, codes: &[TokenHash]) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        replace_codes(&tx, user_id, codes).await?;
        commit(tx).await
    }

    #[tracing::instrument(skip_all)]
    async fn use_recovery_code(&self, user_id: Uuid, code: TokenHash) -> StoreResult<Option<u32>> {
        let used = self
            .execute(
                "UPDATE mfa_recovery_codes SET used_at = now()
                 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
                &[&user_id, &code.as_slice()],
            )
            .await?;
        if used == 0 {
            return Ok(None);
        }
        Ok(Some(self.mfa_status(user_id).await?.recovery_codes_left))
    }

    async fn mfa_status(&self, user_id: Uuid) -> StoreResult<MfaStatus> {
        let row = self
            .query_one(
                "SELECT (SELECT confirmed_at FROM mfa_factors
                         WHERE user_id = $1 AND kind = 'totp' AND confirmed_at IS NOT NULL)
                          AS totp_confirmed_at,
                        (SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL)
                          AS recovery_codes_left,
                        (SELECT count(*) FROM passkeys WHERE user_id = $1) AS passkeys",
                &[&user_id],
            )
            .await?;
        let count =
            |name| -> StoreResult<u32> { Ok(u32::try_from(row.column::<i64>(name)?).unwrap_or(0)) };
        let (recovery_codes_left, passkeys) = (count("recovery_codes_left")?, count("passkeys")?);
        Ok(record!(row => MfaStatus { totp_confirmed_at; recovery_codes_left, passkeys }))
    }

    #[tracing::instrument(skip_all)]
    async fn remove_factors(&self, user_id: Uuid, which: FactorChoice) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock_user(&tx, &user_id).await?;
        let (totp, passkey): (bool, Option<Uuid>) = match which {
            FactorChoice::Totp => (true, None),
            FactorChoice::Passkey(id) => (false, Some(id)),
            FactorChoice::All => (true, None),
        };
        let mut removed = 0;
        if totp {
            // Pending enrolments go too; only an active factor counts as removed.
            let factors = "DELETE FROM mfa_factors WHERE user_id = $1
                           RETURNING confirmed_at IS NOT NULL AS active";
            for row in query(&tx, factors, &[&user_id]).await? {
                removed += u64::from(row.column::<bool>("active")?);
            }
        }
        if which == FactorChoice::All || passkey.is_some() {
            // One passkey goes only while the account keeps another way in.
            let passkeys = "DELETE FROM passkeys WHERE user_id = $1 AND ($2::uuid IS NULL OR id = $2)
                              AND ($2::uuid IS NULL
                                   OR EXISTS (SELECT 1 FROM users WHERE id = $1 AND password_hash <> $3)
                                   OR EXISTS (SELECT 1 FROM passkeys other
                                              WHERE other.user_id = $1 AND other.id <> $2)
                                   OR EXISTS (SELECT 1 FROM identities WHERE user_id = $1))";
            let deleted = execute(&tx, passkeys, &[&user_id, &passkey, &NO_PASSWORD]).await?;
            if deleted == 0 && passkey.is_some() {
                let held = "SELECT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1 AND id = $2)";
                if exists(&tx, held, &[&user_id, &passkey]).await? {
                    return Err(StoreError::LastWayIn);
                }
            }
            removed += deleted;
        }
        let codes = "DELETE FROM mfa_recovery_codes WHERE user_id = $1
                       AND NOT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL)
                       AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)";
        execute(&tx, codes, &[&user_id]).await?;
        commit(tx).await?;
        Ok(removed > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn create_mfa_challenge(&self, challenge: &NewMfaChallenge) -> StoreResult<()> {
        self.execute(
            "INSERT INTO mfa_challenges (token_hash, user_id, methods, expires_at, session_epoch)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4),
                     COALESCE($5, (SELECT session_epoch FROM users WHERE id = $2)))",
            &[
                &challenge.hash.as_slice(),
                &challenge.user_id,
                &challenge.methods.to_stored(),
                &ttl(challenge.ttl_seconds),
                &challenge.epoch.map(|epoch| epoch.0),
            ],
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn attempt_mfa_challenge(
        &self,
        hash: TokenHash,
        max_attempts: u32,
    ) -> StoreResult<Option<MfaChallenge>> {
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let returning = "user_id, methods, session_epoch";
        let sql = super::attempt_statement("mfa_challenges", "token_hash", returning);
        let row = self
            .query_opt(&sql, &[&hash.as_slice(), &max_attempts])
            .await?;
        row.map(|row| {
            let methods = AuthMethods::parse(row.column("methods")?);
            let epoch = SessionEpoch(row.column("session_epoch")?);
            Ok(record!(row => MfaChallenge { user_id; methods, epoch }))
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn consume_mfa_challenge(&self, hash: TokenHash) -> StoreResult<bool> {
        let changed = self
            .execute(
                "UPDATE mfa_challenges SET consumed_at = now()
                 WHERE token_hash = $1 AND consumed_at IS NULL",
                &[&hash.as_slice()],
            )
            .await?;
        Ok(changed == 1)
    }
}

async fn replace_codes(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: Uuid,
    codes: &[TokenHash],
) -> StoreResult<()> {
    execute(
        tx,
        "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
        &[&user_id],
    )
    .await?;
    let insert = "INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)";
    for code in codes {
        execute(tx, insert, &[&user_id, &code.as_slice()]).await?;
    }
    Ok(())
}
