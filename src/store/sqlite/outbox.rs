//! The email outbox the mailer drains.

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};
use uuid::Uuid;

use super::{now_micros, seconds_to_micros, uuid_at, SqliteStore};
use crate::store::*;

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue_email(&self, email: &OutboxEmail) -> StoreResult<()> {
        let email = email.clone();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            insert_email(&tx, &email, now_micros())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn claim_due_emails(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> StoreResult<Vec<ClaimedEmail>> {
        self.call(move |c| {
            let now = now_micros();
            let mut statement = c.prepare_cached(
                "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = ?3
                     WHERE id IN (SELECT id FROM email_outbox
                                  WHERE status = 'pending' AND next_attempt_at <= ?2
                                  ORDER BY next_attempt_at LIMIT ?1)
                     RETURNING id, message_id, recipient, subject, text_body, html_body, attempts",
            )?;
            let claimed = statement
                .query_map(
                    params![
                        i64::from(limit),
                        now,
                        now.saturating_add(seconds_to_micros(lease_seconds))
                    ],
                    |row| {
                        Ok(ClaimedEmail {
                            email: OutboxEmail {
                                id: uuid_at(row, 0)?,
                                message_id: row.get(1)?,
                                recipient: row.get(2)?,
                                subject: row.get(3)?,
                                text_body: row.get(4)?,
                                html_body: row.get(5)?,
                            },
                            attempts: row.get::<_, i64>(6)?.max(0) as u32,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(claimed)
        })
        .await
    }

    async fn record_delivery(&self, id: Uuid, outcome: &DeliveryOutcome) -> StoreResult<()> {
        let outcome = outcome.clone();
        self.call(move |c| {
                let now = now_micros();
                let id = id.to_string();
                match outcome {
                    DeliveryOutcome::Sent => c
                        .prepare_cached(
                            "UPDATE email_outbox SET status = 'sent', sent_at = ?2, last_error = NULL WHERE id = ?1",
                        )?
                        .execute(params![id, now])?,
                    DeliveryOutcome::Retry { after_seconds, error } => c
                        .prepare_cached("UPDATE email_outbox SET next_attempt_at = ?2, last_error = ?3 WHERE id = ?1")?
                        .execute(params![id, now.saturating_add(seconds_to_micros(after_seconds)), error])?,
                    DeliveryOutcome::Dead { error } => c
                        .prepare_cached("UPDATE email_outbox SET status = 'dead', last_error = ?2 WHERE id = ?1")?
                        .execute(params![id, error])?,
                };
                Ok(())
            })
            .await
    }

    async fn outbox_depth(&self) -> StoreResult<i64> {
        self.call(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM email_outbox WHERE status = 'pending'",
                [],
                |row| row.get(0),
            )?)
        })
        .await
    }
}

pub(super) fn insert_email(
    tx: &rusqlite::Transaction<'_>,
    email: &OutboxEmail,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO email_outbox (id, message_id, recipient, subject, text_body, html_body, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        email.id.to_string(),
        email.message_id,
        email.recipient,
        email.subject,
        email.text_body,
        email.html_body,
        now
    ])?;
    Ok(())
}
