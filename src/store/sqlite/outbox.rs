//! The email outbox the mailer drains.

use async_trait::async_trait;
use rusqlite::params;
use uuid::Uuid;

use super::{micros_from_now, now_micros, now_value, text, Columns, SqliteStore};
use crate::store::*;

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue_email(&self, email: &OutboxEmail) -> StoreResult<()> {
        let email = email.clone();
        self.write(move |tx| insert_email(tx, &email, now_micros()))
            .await
    }

    async fn claim_due_emails(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> StoreResult<Vec<ClaimedEmail>> {
        let sql = "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = ?3
                   WHERE id IN (SELECT id FROM email_outbox
                                WHERE status = 'pending' AND next_attempt_at <= ?2
                                ORDER BY next_attempt_at LIMIT ?1)
                   RETURNING id, message_id, recipient, subject, text_body, html_body, attempts";
        let values = vec![
            i64::from(limit).into(),
            now_value(),
            micros_from_now(lease_seconds),
        ];
        self.query(sql.into(), values, |row| {
            let email = record!(row => OutboxEmail {
                id, message_id, recipient, subject, text_body, html_body
            });
            let attempts = row.column::<i64>("attempts")?.max(0) as u32;
            Ok(ClaimedEmail { email, attempts })
        })
        .await
    }

    async fn record_delivery(&self, id: Uuid, outcome: &DeliveryOutcome) -> StoreResult<()> {
        let (sql, values) = match outcome {
            DeliveryOutcome::Sent => (
                // The body goes once it is sent (or dead): it held a live link or code.
                "UPDATE email_outbox SET status = 'sent', sent_at = ?2, last_error = NULL,
                                         text_body = '', html_body = ''
                 WHERE id = ?1",
                vec![text(id), now_value()],
            ),
            DeliveryOutcome::Retry {
                after_seconds,
                error,
            } => (
                "UPDATE email_outbox SET next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
                vec![text(id), micros_from_now(*after_seconds), text(error)],
            ),
            DeliveryOutcome::Dead { error } => (
                "UPDATE email_outbox SET status = 'dead', last_error = ?2, text_body = '',
                                         html_body = ''
                 WHERE id = ?1",
                vec![text(id), text(error)],
            ),
        };
        self.execute(sql, values).await?;
        Ok(())
    }

    async fn outbox_depth(&self) -> StoreResult<i64> {
        let sql = "SELECT count(*) FROM email_outbox WHERE status = 'pending'";
        let depth = self.query_opt(sql.into(), Vec::new(), |row| row.get(0));
        Ok(depth.await?.unwrap_or(0))
    }
}

pub(super) fn insert_email(
    tx: &rusqlite::Transaction<'_>,
    email: &OutboxEmail,
    now: i64,
) -> rusqlite::Result<()> {
    let OutboxEmail {
        id,
        message_id,
        recipient,
        subject,
        text_body,
        html_body,
    } = email;
    tx.prepare_cached(
        "INSERT INTO email_outbox (id, message_id, recipient, subject, text_body, html_body,
                                   next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        id.to_string(),
        message_id,
        recipient,
        subject,
        text_body,
        html_body,
        now
    ])?;
    Ok(())
}
