//! The audit log.

use async_trait::async_trait;
use uuid::Uuid;

use super::{cursor_values, now_value, text, Columns, SqliteStore};
use crate::store::*;

#[async_trait]
impl EventStore for SqliteStore {
    async fn record_event(&self, event: &NewEvent) -> StoreResult<u64> {
        let event = event.clone();
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO auth_events (id, user_id, kind, ip, user_agent, request_id, details,
                                          created_at, actor_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(rusqlite::params_from_iter([
                text(event.id),
                event.user_id.map(|id| id.to_string()).into(),
                text(event.kind),
                event.ip.clone().into(),
                event.user_agent.clone().into(),
                event.request_id.clone().into(),
                text(event.details.as_str()),
                now_value(),
                event.actor_id.map(|id| id.to_string()).into(),
            ]))?;
            match &event.webhook_message {
                Some(message) => super::webhooks::queue_deliveries(tx, &event, message),
                None => Ok(0),
            }
        })
        .await
    }

    async fn list_events(&self, page: &EventPage) -> StoreResult<Vec<AuthEvent>> {
        let sql = "SELECT id, user_id, actor_id, kind, ip, user_agent, request_id, details,
                          created_at
                   FROM auth_events
                   WHERE (?1 IS NULL OR user_id = ?1) AND (?5 IS NULL OR actor_id = ?5)
                     AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id < ?3))
                   ORDER BY created_at DESC, id DESC LIMIT ?4";
        let (before_time, before_id) = cursor_values(page.before);
        let id_text = |id: Option<Uuid>| id.map(|id| id.to_string());
        let limit = i64::from(page.limit);
        let values = vec![
            id_text(page.user_id).into(),
            before_time.into(),
            before_id.into(),
            limit.into(),
            id_text(page.actor_id).into(),
        ];
        self.query(sql.into(), values, |row| {
            Ok(record!(row => AuthEvent {
                id, user_id, actor_id, kind, ip, user_agent, request_id, details, created_at
            }))
        })
        .await
    }
}
