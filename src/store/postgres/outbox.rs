//! The email outbox the mailer drains.

use async_trait::async_trait;
use uuid::Uuid;

use super::{begin, commit, execute, ttl, Columns, PostgresStore};
use crate::store::*;

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn enqueue_email(&self, email: &OutboxEmail) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        insert_email(&tx, email).await?;
        commit(tx).await
    }

    async fn claim_due_emails(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> StoreResult<Vec<ClaimedEmail>> {
        let rows = self
            .query(
                "UPDATE email_outbox SET attempts = attempts + 1,
                        next_attempt_at = now() + make_interval(secs => $2)
                 WHERE id IN (SELECT id FROM email_outbox
                              WHERE status = 'pending' AND next_attempt_at <= now()
                              ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, message_id, recipient, subject, text_body, html_body, attempts",
                &[&i64::from(limit), &ttl(lease_seconds)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let email = record!(row => OutboxEmail {
                    id, message_id, recipient, subject, text_body, html_body
                });
                let attempts = row.column::<i32>("attempts")?.max(0) as u32;
                Ok(ClaimedEmail { email, attempts })
            })
            .collect()
    }

    async fn record_delivery(&self, id: Uuid, outcome: &DeliveryOutcome) -> StoreResult<()> {
        match outcome {
            DeliveryOutcome::Sent => {
                // The body goes once it is sent (or dead): it held a live link or code.
                let sent = "UPDATE email_outbox
                            SET status = 'sent', sent_at = now(), last_error = NULL,
                                text_body = '', html_body = ''
                            WHERE id = $1";
                self.execute(sent, &[&id]).await?
            }
            DeliveryOutcome::Retry {
                after_seconds,
                error,
            } => {
                let retry = "UPDATE email_outbox
                             SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
                             WHERE id = $1";
                self.execute(retry, &[&id, &ttl(*after_seconds), error])
                    .await?
            }
            DeliveryOutcome::Dead { error } => {
                let dead = "UPDATE email_outbox
                            SET status = 'dead', last_error = $2, text_body = '', html_body = ''
                            WHERE id = $1";
                self.execute(dead, &[&id, error]).await?
            }
        };
        Ok(())
    }

    async fn outbox_depth(&self) -> StoreResult<i64> {
        let row = self
            .query_one(
                "SELECT count(*) FROM email_outbox WHERE status = 'pending'",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }
}

pub(super) async fn insert_email(
    tx: &deadpool_postgres::Transaction<'_>,
    email: &OutboxEmail,
) -> StoreResult<()> {
    let insert =
        "INSERT INTO email_outbox (id, message_id, recipient, subject, text_body, html_body)
                  VALUES ($1, $2, $3, $4, $5, $6)";
    let OutboxEmail {
        id,
        message_id,
        recipient,
        subject,
        text_body,
        html_body,
    } = email;
    execute(
        tx,
        insert,
        &[id, message_id, recipient, subject, text_body, html_body],
    )
    .await?;
    Ok(())
}
