//! Accounts: creation, lookups by email and id, password, profile, role, deletion.

use async_trait::async_trait;
use rusqlite::{params, Row, TransactionBehavior};
use uuid::Uuid;

use super::identities::insert_identity;
use super::one_time::insert_token;
use super::outbox::insert_email;
use super::{
    cursor_values, is_unique_violation, now_micros, now_value, session_lives, text, Columns,
    SqliteStore, USER_COLUMNS,
};
use crate::domain::email::{CanonicalEmail, EmailAddress};
use crate::domain::user::User;
use crate::store::*;

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        // The raw error, to tell a taken address from any other failure.
        self.connection
            .call(move |c| {
                let now = now_micros();
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let insert = format!(
                    "INSERT INTO users (id, email, email_canonical, name, password_hash, role,
                                        email_verified, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING {USER_COLUMNS}"
                );
                let created_at = user.created_at.map_or(now, |t| t.timestamp_micros());
                let (email, canonical) = (user.email.as_str(), user.email.canonical());
                let values = params![
                    user.id.to_string(),
                    email,
                    canonical.as_str(),
                    user.name,
                    user.password_hash,
                    user.role.as_str(),
                    user.email_verified,
                    created_at,
                    now
                ];
                let created = tx
                    .prepare_cached(&insert)?
                    .query_row(values, user_from_row)?;
                if let Some((token, email)) = &user.verification {
                    insert_token(&tx, token, now)?;
                    insert_email(&tx, email, now)?;
                }
                if let Some(identity) = &user.identity {
                    insert_identity(&tx, identity, now)?;
                }
                tx.commit()?;
                Ok(created)
            })
            .await
            .map_err(address_taken_or)
    }

    async fn user_by_email(&self, email: &CanonicalEmail) -> StoreResult<Option<UserCredentials>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, password_hash, session_epoch FROM users
             WHERE email_canonical = ?1 AND deleted_at IS NULL"
        );
        self.query_opt(sql, vec![text(email.as_str())], credentials_from_row)
            .await
    }

    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL");
        self.query_opt(sql, vec![text(id)], user_from_row).await
    }

    async fn rehash_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        let sql = "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1";
        self.execute(sql, vec![text(id), text(password_hash), now_value()])
            .await?;
        Ok(())
    }

    async fn set_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        let password_hash = password_hash.to_string();
        self.write(move |tx| {
            let now = now_micros();
            tx.prepare_cached(
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id.to_string(), password_hash, now])?;
            tx.prepare_cached(
                "UPDATE one_time_tokens SET consumed_at = ?2
                 WHERE user_id = ?1 AND kind = 'password_reset' AND consumed_at IS NULL",
            )?
            .execute(params![id.to_string(), now])?;
            Ok(())
        })
        .await
    }

    async fn mark_email_verified(&self, user_id: Uuid) -> StoreResult<bool> {
        let sql = "UPDATE users SET email_verified = 1, updated_at = ?2
                   WHERE id = ?1 AND deleted_at IS NULL";
        Ok(self.execute(sql, vec![text(user_id), now_value()]).await? > 0)
    }

    async fn user_credentials_by_id(&self, id: Uuid) -> StoreResult<Option<UserCredentials>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, password_hash, session_epoch FROM users WHERE id = ?1 AND deleted_at IS NULL"
        );
        self.query_opt(sql, vec![text(id)], credentials_from_row)
            .await
    }

    async fn update_user(&self, id: Uuid, update: UserUpdate) -> StoreResult<Option<User>> {
        let sql = format!(
            "UPDATE users SET name = CASE WHEN ?2 THEN ?3 ELSE name END, role = COALESCE(?4, role),
                    locked = COALESCE(?5, locked), updated_at = ?6
             WHERE id = ?1 AND deleted_at IS NULL
               AND (NOT (role = 'admin' AND NOT locked)
                    OR (COALESCE(?4, role) = 'admin' AND NOT COALESCE(?5, locked))
                    OR {ANOTHER_ADMIN})
             RETURNING {USER_COLUMNS}"
        );
        let (set_name, name) = (update.name.is_some(), update.name.flatten());
        let values = vec![
            text(id),
            set_name.into(),
            name.into(),
            update.role.map(|role| role.as_str().to_string()).into(),
            update.locked.into(),
            now_value(),
        ];
        let updated = self.query_opt(sql, values, user_from_row).await?;
        if updated.is_none() && self.live_user_exists(id).await? {
            return Err(StoreError::LastAdmin);
        }
        Ok(updated)
    }

    async fn email_held_by_deleted_user(&self, email: &CanonicalEmail) -> StoreResult<bool> {
        let sql = "SELECT EXISTS (SELECT 1 FROM users
                                  WHERE email_canonical = ?1 AND deleted_at IS NOT NULL)";
        let held = self.query_opt(sql.into(), vec![text(email.as_str())], |row| row.get(0));
        Ok(held.await?.unwrap_or(false))
    }

    async fn change_email(
        &self,
        id: Uuid,
        email: &EmailAddress,
        session_id: Uuid,
    ) -> StoreResult<bool> {
        let (address, canonical) = (
            email.as_str().to_string(),
            email.canonical().as_str().to_string(),
        );
        self.connection
            .call(move |c| {
                let now = now_micros();
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !session_lives(&tx, id, session_id)? {
                    return Ok(None);
                }
                let changed = tx
                    .prepare_cached(
                        "UPDATE users SET email = ?2, email_canonical = ?3, email_verified = 1,
                                updated_at = ?4
                         WHERE id = ?1 AND deleted_at IS NULL",
                    )?
                    .execute(params![id.to_string(), address, canonical, now])?
                    > 0;
                if changed {
                    for retire in [
                        "UPDATE one_time_tokens SET consumed_at = ?2
                         WHERE user_id = ?1 AND consumed_at IS NULL",
                        "UPDATE email_logins SET consumed_at = ?2
                         WHERE user_id = ?1 AND consumed_at IS NULL",
                    ] {
                        tx.prepare_cached(retire)?
                            .execute(params![id.to_string(), now])?;
                    }
                }
                tx.commit()?;
                Ok(Some(changed))
            })
            .await
            .map_err(address_taken_or)?
            .ok_or(StoreError::SessionEnded)
    }

    async fn soft_delete_user(&self, id: Uuid) -> StoreResult<bool> {
        let deleted = self
            .write(move |tx| {
                let delete = format!(
                    "UPDATE users SET deleted_at = ?2, updated_at = ?2
                     WHERE id = ?1 AND deleted_at IS NULL
                       AND (NOT (role = 'admin' AND NOT locked) OR {ANOTHER_ADMIN})"
                );
                let deleted = tx
                    .prepare_cached(&delete)?
                    .execute(params![id.to_string(), now_micros()])?;
                if deleted > 0 {
                    tx.prepare_cached("DELETE FROM identities WHERE user_id = ?1")?
                        .execute([id.to_string()])?;
                    // Its mailed links (a reset, a verification, an address change) open nothing
                    // now.
                    let retire = "UPDATE one_time_tokens SET consumed_at = ?2
                                  WHERE user_id = ?1 AND consumed_at IS NULL";
                    tx.prepare_cached(retire)?
                        .execute(params![id.to_string(), now_micros()])?;
                }
                Ok(deleted > 0)
            })
            .await?;
        if !deleted && self.live_user_exists(id).await? {
            return Err(StoreError::LastAdmin);
        }
        Ok(deleted)
    }

    async fn list_users(&self, page: &UserPage) -> StoreResult<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE deleted_at IS NULL
               AND (?1 IS NULL OR created_at > ?1 OR (created_at = ?1 AND id > ?2))
               AND (?3 IS NULL OR email_canonical LIKE ?3 ESCAPE '\\' OR lower(name) LIKE ?3 ESCAPE '\\')
             ORDER BY created_at, id LIMIT ?4"
        );
        let (after_time, after_id) = cursor_values(page.after);
        let limit = i64::from(page.limit);
        let values = vec![
            after_time.into(),
            after_id.into(),
            page.like_pattern().into(),
            limit.into(),
        ];
        self.query(sql, values, user_from_row).await
    }
}

/// Another live, unlocked admin than the user `?1`. SQLite has one writer at a time, so the
/// check and the write it guards cannot interleave with another's.
const ANOTHER_ADMIN: &str = "EXISTS (SELECT 1 FROM users other
                                     WHERE other.id <> ?1 AND other.role = 'admin'
                                       AND NOT other.locked AND other.deleted_at IS NULL)";

impl SqliteStore {
    async fn live_user_exists(&self, id: Uuid) -> StoreResult<bool> {
        let sql = "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND deleted_at IS NULL)";
        let exists = self.query_opt(sql.into(), vec![text(id)], |row| row.get(0));
        Ok(exists.await?.unwrap_or(false))
    }
}

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(
        record!(row => User { id, email, name, role, email_verified, locked, created_at, updated_at }),
    )
}

fn credentials_from_row(row: &Row<'_>) -> rusqlite::Result<UserCredentials> {
    let (user, password_hash) = (user_from_row(row)?, row.column("password_hash")?);
    Ok(UserCredentials {
        user,
        password_hash,
        session_epoch: SessionEpoch(row.column("session_epoch")?),
    })
}

/// A write that would give an address a second holder is `EmailTaken`; any other error is the
/// store's.
fn address_taken_or(e: tokio_rusqlite::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::EmailTaken
    } else {
        e.into()
    }
}
