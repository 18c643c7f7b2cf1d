//! Cursor pages of users and audit events: the cursor is the last row's (created_at, id), opaque
//! to clients, and only times a store can hold are accepted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

use crate::error::AppError;
use crate::store::{AuthEvent, EventPage, Store};

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

pub fn encode_cursor(time: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", time.timestamp_micros(), id))
}

pub fn checked_limit(limit: Option<u32>) -> Result<u32, AppError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(AppError::validation(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    Ok(limit)
}

/// The search text: trimmed, blank meaning none; control characters (a NUL, which PostgreSQL
/// text cannot hold, among them) are refused.
pub fn checked_query(query: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(query) = query.map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    if query.chars().any(char::is_control) {
        return Err(AppError::validation(
            "q",
            "must not contain control characters",
        ));
    }
    Ok(Some(query.to_string()))
}

pub fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), AppError> {
    let invalid = || AppError::validation("cursor", "is not a cursor this API returned");
    let text = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(text).map_err(|_| invalid())?;
    let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
    // Only times a store can hold: PostgreSQL refuses some that chrono reads (and answered 500).
    let time = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or_else(invalid)?;
    Ok((time, id.parse().map_err(|_| invalid())?))
}

/// A page of the audit log, newest first: one user's (`Some`) or everyone's.
pub async fn event_page(
    store: &dyn Store,
    user_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<(Vec<AuthEvent>, Option<String>), AppError> {
    let limit = checked_limit(limit)?;
    let page = EventPage {
        user_id,
        actor_id,
        before: cursor
            .filter(|c| !c.is_empty())
            .map(decode_cursor)
            .transpose()?,
        limit: limit + 1,
    };
    let mut events = store.list_events(&page).await?;
    let next_cursor = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|e| encode_cursor(e.created_at, e.id))
    } else {
        None
    };
    Ok((events, next_cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::{Role, User};

    #[test]
    fn cursors_round_trip_and_junk_is_a_field_error() {
        let user = User {
            id: Uuid::new_v4(),
            email: "a@example.com".into(),
            name: None,
            role: Role::User,
            email_verified: false,
            locked: false,
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            updated_at: Utc::now(),
        };
        assert_eq!(
            decode_cursor(&encode_cursor(user.created_at, user.id)).unwrap(),
            (user.created_at, user.id)
        );
        let far_future = URL_SAFE_NO_PAD.encode(format!("{}.{}", i64::MAX / 2, Uuid::nil()));
        let before_christ =
            URL_SAFE_NO_PAD.encode(format!("{}.{}", -62_200_000_000_000_000i64, Uuid::nil()));
        for junk in ["", "!!", "bm90LWEtY3Vyc29y", &far_future, &before_christ] {
            assert!(
                matches!(decode_cursor(junk), Err(AppError::Validation(_))),
                "{junk}"
            );
        }
    }
}
