//! Second factors, recovery codes and pending second steps.

use async_trait::async_trait;
use uuid::Uuid;

use super::{ttl, Params, PostgresStore};
use crate::domain::assurance::AuthMethods;
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

#[async_trait]
impl MfaStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn create_totp_factor(&self, factor: &TotpFactor) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_user(&tx, &factor.user_id).await?;
        let drop_pending = tx
            .prepare_cached(
                "DELETE FROM mfa_factors WHERE user_id = $1 AND kind = 'totp' AND confirmed_at IS NULL",
            )
            .await?;
        tx.execute(&drop_pending, &[&factor.user_id]).await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO mfa_factors (id, user_id, kind, secret, created_at)
                 VALUES ($1, $2, 'totp', $3, $4)",
            )
            .await?;
        tx.execute(
            &insert,
            &[
                &factor.id,
                &factor.user_id,
                &factor.sealed_secret,
                &factor.created_at,
            ],
        )
        .await?;
        Ok(tx.commit().await?)
    }

    async fn totp_factor(
        &self,
        user_id: Uuid,
        state: FactorState,
    ) -> Result<Option<TotpFactor>, StoreError> {
        let row = self
            .query_opt(
                "SELECT id, user_id, secret, created_at, confirmed_at FROM mfa_factors
                 WHERE user_id = $1 AND kind = 'totp' AND (confirmed_at IS NOT NULL) = $2",
                &[&user_id, &(state == FactorState::Active)],
            )
            .await?;
        row.map(|row| {
            Ok(TotpFactor {
                id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                sealed_secret: row.try_get(2)?,
                created_at: row.try_get(3)?,
                confirmed_at: row.try_get(4)?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn use_totp_step(&self, factor_id: Uuid, step: i64) -> Result<bool, StoreError> {
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
    async fn confirm_totp_factor(
        &self,
        confirmation: &TotpConfirmation,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let owner = tx
            .query_opt(
                "SELECT user_id FROM mfa_factors WHERE id = $1",
                &[&confirmation.factor_id],
            )
            .await?;
        let Some(owner) = owner else {
            return Ok(false);
        };
        lock_user(&tx, &owner.try_get::<_, Uuid>(0)?).await?;
        // An enrolment begun while another was being confirmed must not make a second active
        // factor (the unique index would refuse it as an error).
        let confirm = tx
            .prepare_cached(
                "UPDATE mfa_factors SET confirmed_at = now(), last_used_step = $2
                 WHERE id = $1 AND confirmed_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM mfa_factors active
                                   WHERE active.user_id = mfa_factors.user_id
                                     AND active.kind = mfa_factors.kind
                                     AND active.confirmed_at IS NOT NULL)
                 RETURNING user_id",
            )
            .await?;
        let values: Params = &[&confirmation.factor_id, &confirmation.step];
        let Some(row) = tx.query_opt(&confirm, values).await? else {
            return Ok(false);
        };
        let user_id: Uuid = row.try_get(0)?;
        replace_codes(&tx, user_id, &confirmation.recovery_codes).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        codes: &[TokenHash],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        replace_codes(&tx, user_id, codes).await?;
        Ok(tx.commit().await?)
    }

    #[tracing::instrument(skip_all)]
    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code: TokenHash,
    ) -> Result<Option<u32>, StoreError> {
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

    async fn mfa_status(&self, user_id: Uuid) -> Result<MfaStatus, StoreError> {
        let row = self
            .query_one(
                "SELECT (SELECT confirmed_at FROM mfa_factors
                         WHERE user_id = $1 AND kind = 'totp' AND confirmed_at IS NOT NULL),
                        (SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL),
                        (SELECT count(*) FROM passkeys WHERE user_id = $1)",
                &[&user_id],
            )
            .await?;
        let count = |index: usize| -> Result<u32, StoreError> {
            Ok(u32::try_from(row.try_get::<_, i64>(index)?).unwrap_or(0))
        };
        Ok(MfaStatus {
            totp_confirmed_at: row.try_get(0)?,
            recovery_codes_left: count(1)?,
            passkeys: count(2)?,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn remove_factors(&self, user_id: Uuid, which: FactorChoice) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let (totp, passkey): (bool, Option<Uuid>) = match which {
            FactorChoice::Totp => (true, None),
            FactorChoice::Passkey(id) => (false, Some(id)),
            FactorChoice::All => (true, None),
        };
        let mut removed = 0;
        if totp {
            // Pending enrolments go too; only an active factor counts as removed.
            let factors = tx
                .prepare_cached(
                    "DELETE FROM mfa_factors WHERE user_id = $1 RETURNING confirmed_at IS NOT NULL",
                )
                .await?;
            for row in tx.query(&factors, &[&user_id]).await? {
                removed += u64::from(row.try_get::<_, bool>(0)?);
            }
        }
        if which == FactorChoice::All || passkey.is_some() {
            let passkeys = tx
                .prepare_cached(
                    "DELETE FROM passkeys WHERE user_id = $1 AND ($2::uuid IS NULL OR id = $2)",
                )
                .await?;
            removed += tx.execute(&passkeys, &[&user_id, &passkey]).await?;
        }
        let codes = tx
            .prepare_cached(
                "DELETE FROM mfa_recovery_codes WHERE user_id = $1
                   AND NOT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL)
                   AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)",
            )
            .await?;
        tx.execute(&codes, &[&user_id]).await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn create_mfa_challenge(&self, challenge: &NewMfaChallenge) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO mfa_challenges (token_hash, user_id, methods, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            &[
                &challenge.hash.as_slice(),
                &challenge.user_id,
                &challenge.methods.to_stored(),
                &ttl(challenge.ttl_seconds),
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
    ) -> Result<Option<MfaChallenge>, StoreError> {
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let row = self
            .query_opt(
                "UPDATE mfa_challenges SET attempts = attempts + 1
                 WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > now()
                   AND attempts < $2
                 RETURNING user_id, methods",
                &[&hash.as_slice(), &max_attempts],
            )
            .await?;
        row.map(|row| {
            Ok(MfaChallenge {
                user_id: row.try_get(0)?,
                methods: AuthMethods::parse(&row.try_get::<_, String>(1)?),
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn consume_mfa_challenge(&self, hash: TokenHash) -> Result<bool, StoreError> {
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
) -> Result<(), StoreError> {
    let clear = tx
        .prepare_cached("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
        .await?;
    tx.execute(&clear, &[&user_id]).await?;
    let insert = tx
        .prepare_cached("INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)")
        .await?;
    for code in codes {
        tx.execute(&insert, &[&user_id, &code.as_slice()]).await?;
    }
    Ok(())
}

/// Serialises the enrolment steps of one user (begin and confirm), which read then write.
async fn lock_user(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: &Uuid,
) -> Result<(), StoreError> {
    tx.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[user_id])
        .await?;
    Ok(())
}
