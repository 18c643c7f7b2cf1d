//! The audit log.

use async_trait::async_trait;
use uuid::Uuid;

use super::{Columns, Params, PostgresStore};
use crate::store::*;

#[async_trait]
impl EventStore for PostgresStore {
    async fn record_event(&self, event: &NewEvent) -> StoreResult<()> {
        self.execute(
            "INSERT INTO auth_events (id, user_id, kind, ip, user_agent, request_id, details)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &Uuid::new_v4(),
                &event.user_id,
                &event.kind,
                &event.ip,
                &event.user_agent,
                &event.request_id,
                &event.details,
            ],
        )
        .await?;
        Ok(())
    }

    async fn list_events(&self, page: &EventPage) -> StoreResult<Vec<AuthEvent>> {
        let (before_time, before_id) = page.before.unzip();
        let params: Params<'_> = &[
            &page.user_id,
            &before_time,
            &before_id,
            &i64::from(page.limit),
        ];
        let rows = self
            .query(
                "SELECT id, user_id, kind, ip, user_agent, request_id, details, created_at FROM auth_events
                 WHERE ($1::uuid IS NULL OR user_id = $1)
                   AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
                 ORDER BY created_at DESC, id DESC LIMIT $4",
                params,
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(record!(row => AuthEvent {
                    id, user_id, kind, ip, user_agent, request_id, details, created_at
                }))
            })
            .collect()
    }
}
