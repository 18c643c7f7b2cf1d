//! The email outbox the mailer drains.

use async_trait::async_trait;
use uuid::Uuid;

use super::{ttl, PostgresStore};
use crate::store::*;

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn enqueue_email(&self, email: &OutboxEmail) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_email(&tx, email).await?;
        Ok(tx.commit().await?)
    }

    async fn claim_due_emails(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
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
                Ok(ClaimedEmail {
                    email: OutboxEmail {
                        id: row.try_get(0)?,
                        message_id: row.try_get(1)?,
                        recipient: row.try_get(2)?,
                        subject: row.try_get(3)?,
                        text_body: row.try_get(4)?,
                        html_body: row.try_get(5)?,
                    },
                    attempts: row.try_get::<_, i32>(6)?.max(0) as u32,
                })
            })
            .collect()
    }

    async fn record_delivery(&self, id: Uuid, outcome: &DeliveryOutcome) -> Result<(), StoreError> {
        let client = self.client().await?;
        match outcome {
            DeliveryOutcome::Sent => {
                let statement = client
                    .prepare_cached(
                        "UPDATE email_outbox SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = $1",
                    )
                    .await?;
                client.execute(&statement, &[&id]).await?;
            }
            DeliveryOutcome::Retry {
                after_seconds,
                error,
            } => {
                let statement = client
                    .prepare_cached(
                        "UPDATE email_outbox SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
                         WHERE id = $1",
                    )
                    .await?;
                client
                    .execute(&statement, &[&id, &ttl(*after_seconds), error])
                    .await?;
            }
            DeliveryOutcome::Dead { error } => {
                let statement = client
                    .prepare_cached(
                        "UPDATE email_outbox SET status = 'dead', last_error = $2 WHERE id = $1",
                    )
                    .await?;
                client.execute(&statement, &[&id, error]).await?;
            }
        }
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<i64, StoreError> {
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
) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO email_outbox (id, message_id, recipient, subject, text_body, html_body)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &email.id,
            &email.message_id,
            &email.recipient,
            &email.subject,
            &email.text_body,
            &email.html_body,
        ],
    )
    .await?;
    Ok(())
}
