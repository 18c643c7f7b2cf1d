//! Readiness and the janitor's purges.

use async_trait::async_trait;
use rusqlite::params;

use super::{now_micros, seconds_to_micros, SqliteStore};
use crate::store::*;

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.call(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn purge(&self, batch: PurgeBatch) -> StoreResult<u64> {
        let sql = purge_statement(batch.target);
        self.call(move |c| {
            let deleted = c.prepare_cached(sql)?.execute(params![
                now_micros(),
                seconds_to_micros(batch.retention_seconds),
                i64::from(batch.limit)
            ])?;
            Ok(deleted as u64)
        })
        .await
    }
}

fn purge_statement(target: PurgeTarget) -> &'static str {
    match target {
        PurgeTarget::ExpiredRefreshTokens => {
            "DELETE FROM refresh_tokens WHERE rowid IN (
                 SELECT rowid FROM refresh_tokens WHERE expires_at < ?1 - ?2 LIMIT ?3)"
        }
        PurgeTarget::DeadSessions => {
            "DELETE FROM sessions WHERE rowid IN (
                 SELECT rowid FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1 - ?2 LIMIT ?3)"
        }
        PurgeTarget::SpentOneTimeTokens => {
            "DELETE FROM one_time_tokens WHERE rowid IN (
                 SELECT rowid FROM one_time_tokens WHERE expires_at < ?1 OR consumed_at < ?1 - ?2 LIMIT ?3)"
        }
        PurgeTarget::OldEvents => {
            "DELETE FROM auth_events WHERE rowid IN (
                 SELECT rowid FROM auth_events WHERE created_at < ?1 - ?2 LIMIT ?3)"
        }
        PurgeTarget::SpentMfaChallenges => {
            "DELETE FROM mfa_challenges WHERE rowid IN (
                 SELECT rowid FROM mfa_challenges WHERE expires_at < ?1 OR consumed_at < ?1 - ?2 LIMIT ?3)"
        }
        PurgeTarget::AbandonedEnrolments => {
            "DELETE FROM mfa_factors WHERE rowid IN (
                 SELECT rowid FROM mfa_factors WHERE confirmed_at IS NULL AND created_at < ?1 - ?2 LIMIT ?3)"
        }
        PurgeTarget::ExpiredCeremonies => {
            "DELETE FROM webauthn_ceremonies WHERE rowid IN (
                 SELECT rowid FROM webauthn_ceremonies WHERE expires_at < ?1 AND ?2 >= 0 LIMIT ?3)"
        }
        PurgeTarget::DeliveredEmails => {
            "DELETE FROM email_outbox WHERE rowid IN (
                 SELECT rowid FROM email_outbox
                 WHERE status IN ('sent', 'dead') AND COALESCE(sent_at, next_attempt_at) < ?1 - ?2 LIMIT ?3)"
        }
    }
}
