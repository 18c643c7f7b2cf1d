//! The audit log.

use async_trait::async_trait;

use super::{Columns, Params, PostgresStore};
use crate::store::*;

#[async_trait]
impl EventStore for PostgresStore {
    async fn record_event(&self, event: &NewEvent) -> StoreResult<u64> {
        let insert = "INSERT INTO auth_events (id, user_id, kind, ip, user_agent, request_id,
                                               details, actor_id)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let event_params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &event.id,
            &event.user_id,
            &event.kind,
            &event.ip,
            &event.user_agent,
            &event.request_id,
            &event.details,
            &event.actor_id,
        ];
        let Some(message) = &event.webhook_message else {
            self.execute(insert, &event_params).await?;
            return Ok(0);
        };
        // One statement, so one transaction: the event and a delivery for each endpoint
        // subscribed to its kind (`domain::webhooks::subscribes`), or neither.
        let mut params = event_params.to_vec();
        params.push(message);
        self.execute(
            "WITH event AS (
                 INSERT INTO auth_events (id, user_id, kind, ip, user_agent, request_id, details,
                                          actor_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, kind)
             INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_kind, payload)
             SELECT gen_random_uuid(), endpoint.id, event.id, event.kind, $9
             FROM webhook_endpoints endpoint, event
             WHERE endpoint.enabled
               AND (event.kind = ANY(endpoint.events) OR '*' = ANY(endpoint.events))",
            &params,
        )
        .await
    }

    async fn list_events(&self, page: &EventPage) -> StoreResult<Vec<AuthEvent>> {
        let (before_time, before_id) = page.before.unzip();
        let params: Params<'_> = &[
            &page.user_id,
            &before_time,
            &before_id,
            &i64::from(page.limit),
            &page.actor_id,
        ];
        let rows = self
            .query(
                "SELECT id, user_id, actor_id, kind, ip, user_agent, request_id, details, created_at
                 FROM auth_events
                 WHERE ($1::uuid IS NULL OR user_id = $1) AND ($5::uuid IS NULL OR actor_id = $5)
                   AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
                 ORDER BY created_at DESC, id DESC LIMIT $4",
                params,
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(record!(row => AuthEvent {
                    id, user_id, actor_id, kind, ip, user_agent, request_id, details, created_at
                }))
            })
            .collect()
    }
}
