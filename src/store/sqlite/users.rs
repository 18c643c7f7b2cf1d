//! Accounts: creation, lookups by email and id, password, profile, role, deletion.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use uuid::Uuid;

use super::one_time::insert_token;
use super::outbox::insert_email;
use super::{
    cursor_values, is_unique_violation, now_micros, now_value, role_from, text, time_at, uuid_at,
    SqliteStore, USER_COLUMNS,
};
use crate::domain::email::CanonicalEmail;
use crate::domain::user::{Role, User};
use crate::store::*;

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        // The raw error, to tell a taken address from any other failure.
        self.connection.call(move |c| {
                let now = now_micros();
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut statement = tx.prepare_cached(&format!(
                    "INSERT INTO users (id, email, email_canonical, name, password_hash, role, email_verified,
                                        created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING {USER_COLUMNS}"
                ))?;
                let created = statement.query_row(
                    params![
                        user.id.to_string(),
                        user.email.as_str(),
                        user.email.canonical().as_str(),
                        user.name,
                        user.password_hash,
                        user.role.as_str(),
                        user.email_verified,
                        user.created_at.map(|t| t.timestamp_micros()).unwrap_or(now),
                        now
                    ],
                    user_from_row,
                )?;
                drop(statement);
                if let Some((token, email)) = &user.verification {
                    insert_token(&tx, token, now)?;
                    insert_email(&tx, email, now)?;
                }
                tx.commit()?;
                Ok(created)
            })
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::EmailTaken
                } else {
                    e.into()
                }
            })
    }

    async fn user_by_email(&self, email: &CanonicalEmail) -> StoreResult<Option<UserCredentials>> {
        let canonical = email.as_str().to_string();
        self.call(move |c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users
                     WHERE email_canonical = ?1 AND deleted_at IS NULL"
            ))?;
            Ok(statement
                .query_row([canonical], |row| {
                    Ok(UserCredentials {
                        user: user_from_row(row)?,
                        password_hash: row.get(8)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        self.call(move |c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL"
            ))?;
            Ok(statement
                .query_row([id.to_string()], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn rehash_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        let password_hash = password_hash.to_string();
        self.call(move |c| {
            c.prepare_cached("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![id.to_string(), password_hash, now_micros()])?;
            Ok(())
        })
        .await
    }

    async fn set_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        let password_hash = password_hash.to_string();
        self.call(move |c| {
            let now = now_micros();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id.to_string(), password_hash, now])?;
            tx.prepare_cached(
                "UPDATE one_time_tokens SET consumed_at = ?2
                     WHERE user_id = ?1 AND kind = 'password_reset' AND consumed_at IS NULL",
            )?
            .execute(params![id.to_string(), now])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn mark_email_verified(&self, user_id: Uuid) -> StoreResult<bool> {
        let sql = "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL";
        Ok(self.execute(sql, vec![text(user_id), now_value()]).await? > 0)
    }

    async fn user_credentials_by_id(&self, id: Uuid) -> StoreResult<Option<UserCredentials>> {
        self.call(move |c| {
                let mut statement = c.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = ?1 AND deleted_at IS NULL"
                ))?;
                Ok(statement
                    .query_row([id.to_string()], |row| {
                        Ok(UserCredentials {
                            user: user_from_row(row)?,
                            password_hash: row.get(8)?,
                        })
                    })
                    .optional()?)
            })
            .await
    }

    async fn update_user(&self, id: Uuid, update: UserUpdate) -> StoreResult<Option<User>> {
        let (set_name, name) = (update.name.is_some(), update.name.flatten());
        let role = update.role.map(Role::as_str);
        self.call(move |c| {
            let values = params![id.to_string(), set_name, name, role, update.locked, now_micros()];
            let mut statement = c.prepare_cached(&format!(
                "UPDATE users SET name = CASE WHEN ?2 THEN ?3 ELSE name END, role = COALESCE(?4, role),
                        locked = COALESCE(?5, locked), updated_at = ?6
                 WHERE id = ?1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
            ))?;
            Ok(statement.query_row(values, user_from_row).optional()?)
        })
        .await
    }

    async fn email_held_by_deleted_user(&self, email: &CanonicalEmail) -> StoreResult<bool> {
        let canonical = email.as_str().to_string();
        self.call(move |c| {
                Ok(c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE email_canonical = ?1 AND deleted_at IS NOT NULL)",
                )?
                .query_row([canonical], |row| row.get::<_, bool>(0))?)
            })
            .await
    }

    async fn soft_delete_user(&self, id: Uuid) -> StoreResult<bool> {
        let sql = "UPDATE users SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL";
        Ok(self.execute(sql, vec![text(id), now_value()]).await? > 0)
    }

    async fn list_users(&self, page: &UserPage) -> StoreResult<Vec<User>> {
        let (after_time, after_id) = cursor_values(page.after);
        let pattern = page.like_pattern();
        let limit = i64::from(page.limit);
        self.call(move |c| {
                let mut statement = c.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users
                     WHERE deleted_at IS NULL
                       AND (?1 IS NULL OR created_at > ?1 OR (created_at = ?1 AND id > ?2))
                       AND (?3 IS NULL OR email_canonical LIKE ?3 ESCAPE '\\' OR lower(name) LIKE ?3 ESCAPE '\\')
                     ORDER BY created_at, id LIMIT ?4"
                ))?;
                let users = statement
                    .query_map(params![after_time, after_id, pattern, limit], user_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(users)
            })
            .await
    }
}

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: uuid_at(row, 0)?,
        email: row.get(1)?,
        name: row.get(2)?,
        role: role_from(&row.get::<_, String>(3)?)?,
        email_verified: row.get(4)?,
        locked: row.get(5)?,
        created_at: time_at(row, 6)?,
        updated_at: time_at(row, 7)?,
    })
}
