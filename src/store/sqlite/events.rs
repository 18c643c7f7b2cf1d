//! The audit log.

use async_trait::async_trait;
use rusqlite::params;
use uuid::Uuid;

use super::{corrupt, cursor_values, now_micros, time_at, uuid_at, SqliteStore};
use crate::store::*;

#[async_trait]
impl EventStore for SqliteStore {
    async fn record_event(&self, event: &NewEvent) -> StoreResult<()> {
        let event = event.clone();
        self.call(move |c| {
                c.prepare_cached(
                    "INSERT INTO auth_events (id, user_id, kind, ip, user_agent, request_id, details, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    Uuid::new_v4().to_string(),
                    event.user_id.map(|id| id.to_string()),
                    event.kind,
                    event.ip,
                    event.user_agent,
                    event.request_id,
                    event.details,
                    now_micros()
                ])?;
                Ok(())
            })
            .await
    }

    async fn list_events(&self, page: &EventPage) -> StoreResult<Vec<AuthEvent>> {
        let user_id = page.user_id.map(|id| id.to_string());
        let (before_time, before_id) = cursor_values(page.before);
        let limit = i64::from(page.limit);
        self.call(move |c| {
                let mut statement = c.prepare_cached(
                    "SELECT id, user_id, kind, ip, user_agent, request_id, details, created_at FROM auth_events
                     WHERE (?1 IS NULL OR user_id = ?1)
                       AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id < ?3))
                     ORDER BY created_at DESC, id DESC LIMIT ?4",
                )?;
                let events = statement
                    .query_map(params![user_id, before_time, before_id, limit], |row| {
                        let user_id: Option<String> = row.get(1)?;
                        Ok(AuthEvent {
                            id: uuid_at(row, 0)?,
                            user_id: user_id.map(|id| id.parse().map_err(|_| corrupt("uuid"))).transpose()?,
                            kind: row.get(2)?,
                            ip: row.get(3)?,
                            user_agent: row.get(4)?,
                            request_id: row.get(5)?,
                            details: row.get(6)?,
                            created_at: time_at(row, 7)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(events)
            })
            .await
    }
}
