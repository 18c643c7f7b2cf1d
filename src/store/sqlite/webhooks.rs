//! Webhook endpoints and the deliveries the dispatcher drains (queued with their event, see
//! `events.rs`).

use async_trait::async_trait;
use rusqlite::types::{FromSqlError, FromSqlResult, Value, ValueRef};
use rusqlite::Row;
use uuid::Uuid;

use super::{
    cursor_values, micros_from_now, now_micros, now_value, text, Column, Columns, SqliteStore,
};
use crate::store::*;

const ENDPOINT_COLUMNS: &str = "id, url, description, events, enabled, source, created_at";

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_kind, payload, status, attempts, \
     next_attempt_at, last_error, last_status, created_at, delivered_at";

impl Column for EndpointSource {
    fn from_column(value: ValueRef<'_>) -> FromSqlResult<Self> {
        EndpointSource::parse(value.as_str()?).ok_or(FromSqlError::InvalidType)
    }
}

/// Event kinds are stored as a JSON array of strings.
impl Column for Vec<String> {
    fn from_column(value: ValueRef<'_>) -> FromSqlResult<Self> {
        serde_json::from_str(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

fn events_value(events: &[String]) -> Value {
    text(serde_json::to_string(events).expect("strings serialise"))
}

fn endpoint(row: &Row<'_>) -> rusqlite::Result<WebhookEndpoint> {
    Ok(record!(row => WebhookEndpoint {
        id, url, description, events, enabled, source, created_at
    }))
}

fn delivery(row: &Row<'_>) -> rusqlite::Result<WebhookDelivery> {
    let attempts = row.column::<i64>("attempts")?.clamp(0, i64::from(u32::MAX)) as u32;
    let last_status = row
        .column::<Option<i64>>("last_status")?
        .and_then(|status| u16::try_from(status).ok());
    Ok(record!(row => WebhookDelivery {
        id, endpoint_id, event_id, event_kind, payload, status, next_attempt_at, last_error,
        created_at, delivered_at; attempts, last_status
    }))
}

/// Queues `message` for every enabled endpoint subscribed to the event's kind
/// (`domain::webhooks::subscribes`), in the event's transaction; answers how many.
pub(super) fn queue_deliveries(
    tx: &rusqlite::Transaction<'_>,
    event: &NewEvent,
    message: &str,
) -> rusqlite::Result<u64> {
    let endpoints = tx
        .prepare_cached(
            "SELECT id FROM webhook_endpoints endpoint
             WHERE endpoint.enabled
               AND EXISTS (SELECT 1 FROM json_each(endpoint.events) WHERE value IN (?1, '*'))",
        )?
        .query_map([event.kind], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let now = now_micros();
    let mut insert = tx.prepare_cached(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_kind, payload,
                                         next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?;
    for endpoint in &endpoints {
        insert.execute(rusqlite::params![
            Uuid::new_v4().to_string(),
            endpoint,
            event.id.to_string(),
            event.kind,
            message,
            now
        ])?;
    }
    Ok(endpoints.len() as u64)
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook_endpoint(
        &self,
        endpoint: &NewWebhookEndpoint,
    ) -> StoreResult<WebhookEndpoint> {
        let sql = format!(
            "INSERT INTO webhook_endpoints (id, url, description, sealed_secret, events, source,
                                            created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING {ENDPOINT_COLUMNS}"
        );
        let values = vec![
            text(endpoint.id),
            text(&endpoint.url),
            endpoint.description.clone().into(),
            endpoint.sealed_secret.clone().into(),
            events_value(&endpoint.events),
            text(endpoint.source.as_str()),
            now_value(),
        ];
        self.query_opt(sql, values, self::endpoint)
            .await?
            .ok_or_else(|| StoreError::Backend("the endpoint was not stored".into()))
    }

    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        let sql =
            format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id");
        self.query(sql, Vec::new(), endpoint).await
    }

    async fn webhook_endpoint(&self, id: Uuid) -> StoreResult<Option<WebhookEndpoint>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1");
        self.query_opt(sql, vec![text(id)], endpoint).await
    }

    async fn delete_webhook_endpoint(&self, id: Uuid) -> StoreResult<bool> {
        let sql = "DELETE FROM webhook_endpoints WHERE id = ?1";
        Ok(self.execute(sql, vec![text(id)]).await? > 0)
    }

    async fn sync_configured_endpoints(&self, endpoints: &[NewWebhookEndpoint]) -> StoreResult<()> {
        let endpoints = endpoints.to_vec();
        self.write(move |tx| {
            let now = now_micros();
            let mut upsert = tx.prepare_cached(
                "INSERT INTO webhook_endpoints (id, url, description, sealed_secret, events,
                                                source, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'config', ?6)
                 ON CONFLICT (id) DO UPDATE SET url = excluded.url,
                     description = excluded.description, sealed_secret = excluded.sealed_secret,
                     events = excluded.events, enabled = 1",
            )?;
            for endpoint in &endpoints {
                upsert.execute(rusqlite::params_from_iter([
                    text(endpoint.id),
                    text(&endpoint.url),
                    endpoint.description.clone().into(),
                    endpoint.sealed_secret.clone().into(),
                    events_value(&endpoint.events),
                    Value::Integer(now),
                ]))?;
            }
            let configured = tx
                .prepare_cached(
                    "SELECT id FROM webhook_endpoints WHERE source = 'config' AND enabled",
                )?
                .query_map([], |row| row.column::<Uuid>("id"))?
                .collect::<rusqlite::Result<Vec<Uuid>>>()?;
            let mut disable =
                tx.prepare_cached("UPDATE webhook_endpoints SET enabled = 0 WHERE id = ?1")?;
            for id in configured {
                if !endpoints.iter().any(|e| e.id == id) {
                    disable.execute([id.to_string()])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn claim_due_webhooks(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> StoreResult<Vec<ClaimedWebhook>> {
        let sql = "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?3
                   WHERE id IN (SELECT due.id FROM webhook_deliveries due
                                JOIN webhook_endpoints target ON target.id = due.endpoint_id
                                WHERE due.status = 'pending' AND due.next_attempt_at <= ?2
                                  AND target.enabled
                                ORDER BY due.next_attempt_at LIMIT ?1)
                   RETURNING id, endpoint_id, event_id, payload, attempts,
                       (SELECT url FROM webhook_endpoints endpoint
                        WHERE endpoint.id = webhook_deliveries.endpoint_id) AS url,
                       (SELECT sealed_secret FROM webhook_endpoints endpoint
                        WHERE endpoint.id = webhook_deliveries.endpoint_id) AS sealed_secret";
        let values = vec![
            i64::from(limit).into(),
            now_value(),
            micros_from_now(lease_seconds),
        ];
        self.query(sql.into(), values, |row| {
            let attempts = row.column::<i64>("attempts")?.clamp(0, i64::from(u32::MAX)) as u32;
            Ok(record!(row => ClaimedWebhook {
                id, endpoint_id, event_id, payload, url, sealed_secret; attempts
            }))
        })
        .await
    }

    async fn record_webhook_attempt(&self, id: Uuid, attempt: &WebhookAttempt) -> StoreResult<()> {
        let status: Value = attempt.status.map(i64::from).into();
        let (sql, values) = match &attempt.outcome {
            DeliveryOutcome::Sent => (
                "UPDATE webhook_deliveries
                 SET status = 'sent', delivered_at = ?2, last_error = NULL, last_status = ?3,
                     next_attempt_at = ?2
                 WHERE id = ?1",
                vec![text(id), now_value(), status],
            ),
            DeliveryOutcome::Retry {
                after_seconds,
                error,
            } => (
                "UPDATE webhook_deliveries
                 SET next_attempt_at = ?2, last_error = ?3, last_status = ?4
                 WHERE id = ?1",
                vec![
                    text(id),
                    micros_from_now(*after_seconds),
                    text(error),
                    status,
                ],
            ),
            DeliveryOutcome::Dead { error } => (
                "UPDATE webhook_deliveries SET status = 'dead', last_error = ?2, last_status = ?3,
                                              next_attempt_at = ?4
                 WHERE id = ?1",
                vec![text(id), text(error), status, now_value()],
            ),
        };
        self.execute(sql, values).await?;
        Ok(())
    }

    async fn webhook_deliveries(&self, page: &DeliveryPage) -> StoreResult<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
             WHERE endpoint_id = ?1
               AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id < ?3))
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        );
        let (before_time, before_id) = cursor_values(page.before);
        let values = vec![
            text(page.endpoint_id),
            before_time.into(),
            before_id.into(),
            i64::from(page.limit).into(),
        ];
        self.query(sql, values, delivery).await
    }

    async fn webhook_delivery(
        &self,
        endpoint_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<WebhookDelivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?1 AND endpoint_id = ?2"
        );
        self.query_opt(sql, vec![text(id), text(endpoint_id)], delivery)
            .await
    }

    async fn requeue_webhook_delivery(&self, endpoint_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let sql = "UPDATE webhook_deliveries
                   SET status = 'pending', attempts = 0, next_attempt_at = ?3
                   WHERE id = ?1 AND endpoint_id = ?2 AND status = 'dead'";
        let values = vec![text(id), text(endpoint_id), now_value()];
        Ok(self.execute(sql, values).await? > 0)
    }

    async fn webhook_queue_depth(&self) -> StoreResult<i64> {
        let sql = "SELECT count(*) FROM webhook_deliveries delivery
                   JOIN webhook_endpoints endpoint ON endpoint.id = delivery.endpoint_id
                   WHERE delivery.status = 'pending' AND endpoint.enabled";
        let depth = self.query_opt(sql.into(), Vec::new(), |row| row.get(0));
        Ok(depth.await?.unwrap_or(0))
    }
}
