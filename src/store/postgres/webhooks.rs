//! Webhook endpoints and the deliveries the dispatcher drains (queued with their event, see
//! `events.rs`).

use async_trait::async_trait;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{begin, commit, execute, ttl, Columns, Params, PostgresStore};
use crate::store::*;

const ENDPOINT_COLUMNS: &str = "id, url, description, events, enabled, source, created_at";

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_kind, payload, status, attempts, \
     next_attempt_at, last_error, last_status, created_at, delivered_at";

/// Sources are stored as their names.
impl<'a> FromSql<'a> for EndpointSource {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let name = <&str as FromSql>::from_sql(ty, raw)?;
        EndpointSource::parse(name).ok_or_else(|| format!("unknown source {name:?}").into())
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

fn endpoint(row: &Row) -> StoreResult<WebhookEndpoint> {
    Ok(record!(row => WebhookEndpoint {
        id, url, description, events, enabled, source, created_at
    }))
}

fn delivery(row: &Row) -> StoreResult<WebhookDelivery> {
    let attempts = row.column::<i32>("attempts")?.max(0) as u32;
    let last_status = row
        .column::<Option<i32>>("last_status")?
        .and_then(|status| u16::try_from(status).ok());
    Ok(record!(row => WebhookDelivery {
        id, endpoint_id, event_id, event_kind, payload, status, next_attempt_at, last_error,
        created_at, delivered_at; attempts, last_status
    }))
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn create_webhook_endpoint(
        &self,
        endpoint: &NewWebhookEndpoint,
    ) -> StoreResult<WebhookEndpoint> {
        let sql = format!(
            "INSERT INTO webhook_endpoints (id, url, description, sealed_secret, events, source)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ENDPOINT_COLUMNS}"
        );
        let params: Params<'_> = &[
            &endpoint.id,
            &endpoint.url,
            &endpoint.description,
            &endpoint.sealed_secret,
            &endpoint.events,
            &endpoint.source.as_str(),
        ];
        let row = self.query_one(&sql, params).await?;
        self::endpoint(&row)
    }

    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        let sql =
            format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id");
        self.query(&sql, &[]).await?.iter().map(endpoint).collect()
    }

    async fn webhook_endpoint(&self, id: Uuid) -> StoreResult<Option<WebhookEndpoint>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
        self.query_opt(&sql, &[&id])
            .await?
            .as_ref()
            .map(endpoint)
            .transpose()
    }

    async fn delete_webhook_endpoint(&self, id: Uuid) -> StoreResult<bool> {
        let deleted = self
            .execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id])
            .await?;
        Ok(deleted > 0)
    }

    async fn sync_configured_endpoints(&self, endpoints: &[NewWebhookEndpoint]) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        for endpoint in endpoints {
            execute(
                &tx,
                "INSERT INTO webhook_endpoints (id, url, description, sealed_secret, events, source)
                 VALUES ($1, $2, $3, $4, $5, 'config')
                 ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url,
                     description = EXCLUDED.description, sealed_secret = EXCLUDED.sealed_secret,
                     events = EXCLUDED.events, enabled = true",
                &[
                    &endpoint.id,
                    &endpoint.url,
                    &endpoint.description,
                    &endpoint.sealed_secret,
                    &endpoint.events,
                ],
            )
            .await?;
        }
        let kept: Vec<Uuid> = endpoints.iter().map(|e| e.id).collect();
        execute(
            &tx,
            "UPDATE webhook_endpoints SET enabled = false
             WHERE source = 'config' AND enabled AND NOT (id = ANY($1))",
            &[&kept],
        )
        .await?;
        commit(tx).await
    }

    async fn claim_due_webhooks(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> StoreResult<Vec<ClaimedWebhook>> {
        let rows = self
            .query(
                "UPDATE webhook_deliveries delivery
                 SET attempts = delivery.attempts + 1,
                     next_attempt_at = now() + make_interval(secs => $2)
                 FROM webhook_endpoints endpoint
                 WHERE endpoint.id = delivery.endpoint_id
                   AND delivery.id IN (
                       SELECT due.id FROM webhook_deliveries due
                       JOIN webhook_endpoints target ON target.id = due.endpoint_id
                       WHERE due.status = 'pending' AND due.next_attempt_at <= now()
                         AND target.enabled
                       ORDER BY due.next_attempt_at LIMIT $1
                       FOR UPDATE OF due SKIP LOCKED)
                 RETURNING delivery.id, delivery.endpoint_id, delivery.event_id, delivery.payload,
                           delivery.attempts, endpoint.url, endpoint.sealed_secret",
                &[&i64::from(limit), &ttl(lease_seconds)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let attempts = row.column::<i32>("attempts")?.max(0) as u32;
                Ok(record!(row => ClaimedWebhook {
                    id, endpoint_id, event_id, payload, url, sealed_secret; attempts
                }))
            })
            .collect()
    }

    async fn record_webhook_attempt(&self, id: Uuid, attempt: &WebhookAttempt) -> StoreResult<()> {
        let status = attempt.status.map(i32::from);
        match &attempt.outcome {
            DeliveryOutcome::Sent => {
                let sent = "UPDATE webhook_deliveries
                            SET status = 'sent', delivered_at = now(), last_error = NULL,
                                last_status = $2, next_attempt_at = now()
                            WHERE id = $1";
                self.execute(sent, &[&id, &status]).await?
            }
            DeliveryOutcome::Retry {
                after_seconds,
                error,
            } => {
                let retry = "UPDATE webhook_deliveries
                             SET next_attempt_at = now() + make_interval(secs => $2),
                                 last_error = $3, last_status = $4
                             WHERE id = $1";
                self.execute(retry, &[&id, &ttl(*after_seconds), error, &status])
                    .await?
            }
            DeliveryOutcome::Dead { error } => {
                let dead = "UPDATE webhook_deliveries
                            SET status = 'dead', last_error = $2, last_status = $3,
                                next_attempt_at = now()
                            WHERE id = $1";
                self.execute(dead, &[&id, error, &status]).await?
            }
        };
        Ok(())
    }

    async fn webhook_deliveries(&self, page: &DeliveryPage) -> StoreResult<Vec<WebhookDelivery>> {
        let (before_time, before_id) = page.before.unzip();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
             WHERE endpoint_id = $1
               AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let params: Params<'_> = &[
            &page.endpoint_id,
            &before_time,
            &before_id,
            &i64::from(page.limit),
        ];
        self.query(&sql, params)
            .await?
            .iter()
            .map(delivery)
            .collect()
    }

    async fn webhook_delivery(
        &self,
        endpoint_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<WebhookDelivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2"
        );
        self.query_opt(&sql, &[&id, &endpoint_id])
            .await?
            .as_ref()
            .map(delivery)
            .transpose()
    }

    async fn requeue_webhook_delivery(&self, endpoint_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let requeued = self
            .execute(
                "UPDATE webhook_deliveries
                 SET status = 'pending', attempts = 0, next_attempt_at = now()
                 WHERE id = $1 AND endpoint_id = $2 AND status = 'dead'",
                &[&id, &endpoint_id],
            )
            .await?;
        Ok(requeued > 0)
    }

    async fn webhook_queue_depth(&self) -> StoreResult<i64> {
        let row = self
            .query_one(
                "SELECT count(*) FROM webhook_deliveries delivery
                 JOIN webhook_endpoints endpoint ON endpoint.id = delivery.endpoint_id
                 WHERE delivery.status = 'pending' AND endpoint.enabled",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }
}
