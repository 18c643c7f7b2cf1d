//! Readiness, pool metrics and the janitor's purges.

use async_trait::async_trait;

use super::{ttl, PostgresStore};
use crate::store::*;

#[async_trait]
impl MaintenanceStore for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        })
    }

    async fn purge(&self, batch: PurgeBatch) -> StoreResult<u64> {
        let sql = purge_statement(batch.target);
        self.execute(
            sql,
            &[&ttl(batch.retention_seconds), &i64::from(batch.limit)],
        )
        .await
    }
}

fn purge_statement(target: PurgeTarget) -> &'static str {
    match target {
        PurgeTarget::ExpiredRefreshTokens => {
            "DELETE FROM refresh_tokens WHERE token_hash IN (
                 SELECT token_hash FROM refresh_tokens
                 WHERE expires_at < now() - make_interval(secs => $1) LIMIT $2)"
        }
        PurgeTarget::DeadSessions => {
            "DELETE FROM sessions WHERE id IN (
                 SELECT id FROM sessions
                 WHERE expires_at < now() OR revoked_at < now() - make_interval(secs => $1)
                 LIMIT $2)"
        }
        PurgeTarget::SpentOneTimeTokens => {
            "DELETE FROM one_time_tokens WHERE token_hash IN (
                 SELECT token_hash FROM one_time_tokens
                 WHERE expires_at < now() OR consumed_at < now() - make_interval(secs => $1)
                 LIMIT $2)"
        }
        PurgeTarget::OldEvents => {
            "DELETE FROM auth_events WHERE id IN (
                 SELECT id FROM auth_events WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)"
        }
        PurgeTarget::SpentMfaChallenges => {
            "DELETE FROM mfa_challenges WHERE token_hash IN (
                 SELECT token_hash FROM mfa_challenges
                 WHERE expires_at < now() OR consumed_at < now() - make_interval(secs => $1)
                 LIMIT $2)"
        }
        PurgeTarget::AbandonedEnrolments => {
            "DELETE FROM mfa_factors WHERE id IN (
                 SELECT id FROM mfa_factors
                 WHERE confirmed_at IS NULL AND created_at < now() - make_interval(secs => $1)
                 LIMIT $2)"
        }
        PurgeTarget::ExpiredCeremonies => {
            "DELETE FROM webauthn_ceremonies WHERE token_hash IN (
                 SELECT token_hash FROM webauthn_ceremonies
                 WHERE expires_at < now() AND $1::float8 >= 0 LIMIT $2)"
        }
        PurgeTarget::DeliveredEmails => {
            "DELETE FROM email_outbox WHERE id IN (
                 SELECT id FROM email_outbox
                 WHERE status IN ('sent', 'dead') AND COALESCE(sent_at, next_attempt_at) < now() - make_interval(secs => $1)
                 LIMIT $2)"
        }
    }
}
