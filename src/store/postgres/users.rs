//! Accounts: creation, lookups by email and id, password, profile, role, deletion.

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use uuid::Uuid;

use super::identities::insert_identity;
use super::one_time::insert_token;
use super::outbox::insert_email;
use super::{
    begin, bounded, commit, execute, exists, lock_user_for_session, query_opt, Columns, Params,
    PostgresStore, USER_COLUMNS,
};
use crate::domain::email::{CanonicalEmail, EmailAddress};
use crate::domain::user::{Role, User};
use crate::store::*;

#[async_trait]
impl UserStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let insert = format!(
            "INSERT INTO users (id, email, email_canonical, name, password_hash, role, email_verified,
                                created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), now()) RETURNING {USER_COLUMNS}"
        );
        let values: Params = &[
            &user.id,
            &user.email.as_str(),
            &user.email.canonical().as_str(),
            &user.name,
            &user.password_hash,
            &user.role.as_str(),
            &user.email_verified,
            &user.created_at,
        ];
        // The raw outcome, to tell a taken address from other failures.
        let outcome = bounded(async { Ok(tx.query_one(&insert, values).await) }).await?;
        let row = outcome.map_err(|e| {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                StoreError::EmailTaken
            } else {
                e.into()
            }
        })?;
        let created = user_from_row(&row)?;
        if let Some((token, email)) = &user.verification {
            insert_token(&tx, token).await?;
            insert_email(&tx, email).await?;
        }
        if let Some(identity) = &user.identity {
            insert_identity(&tx, identity).await?;
        }
        commit(tx).await?;
        Ok(created)
    }

    #[tracing::instrument(skip_all)]
    async fn user_by_email(&self, email: &CanonicalEmail) -> StoreResult<Option<UserCredentials>> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {USER_COLUMNS}, password_hash, session_epoch FROM users
                 WHERE email_canonical = $1 AND deleted_at IS NULL"
                ),
                &[&email.as_str()],
            )
            .await?;
        row.as_ref().map(credentials_from_row).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row = self
            .query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"),
                &[&id],
            )
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn rehash_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
            &[&id, &password_hash],
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn set_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let update = "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1";
        execute(&tx, update, &[&id, &password_hash]).await?;
        let retire = "UPDATE one_time_tokens SET consumed_at = now()
                      WHERE user_id = $1 AND kind = 'password_reset' AND consumed_at IS NULL";
        execute(&tx, retire, &[&id]).await?;
        commit(tx).await
    }

    async fn mark_email_verified(&self, user_id: Uuid) -> StoreResult<bool> {
        let verify = "UPDATE users SET email_verified = true, updated_at = now()
                      WHERE id = $1 AND deleted_at IS NULL";
        Ok(self.execute(verify, &[&user_id]).await? > 0)
    }

    async fn user_credentials_by_id(&self, id: Uuid) -> StoreResult<Option<UserCredentials>> {
        let row = self.query_opt(&format!(
                "SELECT {USER_COLUMNS}, password_hash, session_epoch FROM users WHERE id = $1 AND deleted_at IS NULL"
            ), &[&id])
            .await?;
        row.as_ref().map(credentials_from_row).transpose()
    }

    async fn update_user(&self, id: Uuid, update: UserUpdate) -> StoreResult<Option<User>> {
        let sql = format!(
            "UPDATE users SET name = CASE WHEN $2 THEN $3 ELSE name END, role = COALESCE($4, role),
                    locked = COALESCE($5, locked), updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL
               AND (NOT (role = 'admin' AND NOT locked)
                    OR (COALESCE($4, role) = 'admin' AND NOT COALESCE($5, locked))
                    OR {ANOTHER_ADMIN})
             RETURNING {USER_COLUMNS}"
        );
        let removes_rights = update.may_remove_an_admin();
        let (set_name, name) = (update.name.is_some(), update.name.flatten());
        let role = update.role.map(Role::as_str);
        let params: Params<'_> = &[&id, &set_name, &name, &role, &update.locked];
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        if removes_rights {
            lock_admins(&tx).await?;
        }
        let row = query_opt(&tx, &sql, params).await?;
        let updated = row.as_ref().map(user_from_row).transpose()?;
        if updated.is_none() && live_user_exists(&tx, id).await? {
            return Err(StoreError::LastAdmin);
        }
        commit(tx).await?;
        Ok(updated)
    }

    async fn email_held_by_deleted_user(&self, email: &CanonicalEmail) -> StoreResult<bool> {
        let row = self.query_one("SELECT EXISTS (SELECT 1 FROM users WHERE email_canonical = $1 AND deleted_at IS NOT NULL)", &[&email.as_str()])
            .await?;
        Ok(row.try_get(0)?)
    }

    #[tracing::instrument(skip_all)]
    async fn change_email(
        &self,
        id: Uuid,
        email: &EmailAddress,
        session_id: Uuid,
    ) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock_user_for_session(&tx, &id, &session_id).await?;
        let update = "UPDATE users SET email = $2, email_canonical = $3, email_verified = true,
                             updated_at = now()
                      WHERE id = $1 AND deleted_at IS NULL";
        let values: Params = &[&id, &email.as_str(), &email.canonical().as_str()];
        // The raw outcome, to tell a taken address from other failures.
        let outcome = bounded(async { Ok(tx.execute(update, values).await) }).await?;
        let changed = match outcome {
            Ok(changed) => changed > 0,
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::EmailTaken)
            }
            Err(e) => return Err(e.into()),
        };
        if changed {
            let retire = "UPDATE one_time_tokens SET consumed_at = now()
                          WHERE user_id = $1 AND consumed_at IS NULL";
            execute(&tx, retire, &[&id]).await?;
            let retire = "UPDATE email_logins SET consumed_at = now()
                          WHERE user_id = $1 AND consumed_at IS NULL";
            execute(&tx, retire, &[&id]).await?;
        }
        commit(tx).await?;
        Ok(changed)
    }

    async fn soft_delete_user(&self, id: Uuid) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock_admins(&tx).await?;
        let delete = format!(
            "UPDATE users SET deleted_at = now(), updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL
               AND (NOT (role = 'admin' AND NOT locked) OR {ANOTHER_ADMIN})"
        );
        let deleted = execute(&tx, &delete, &[&id]).await? > 0;
        if !deleted && live_user_exists(&tx, id).await? {
            return Err(StoreError::LastAdmin);
        }
        execute(&tx, "DELETE FROM identities WHERE user_id = $1", &[&id]).await?;
        // Its mailed links (a reset, a verification, an address change) open nothing now.
        let retire = "UPDATE one_time_tokens SET consumed_at = now()
                      WHERE user_id = $1 AND consumed_at IS NULL";
        execute(&tx, retire, &[&id]).await?;
        commit(tx).await?;
        Ok(deleted)
    }

    async fn list_users(&self, page: &UserPage) -> StoreResult<Vec<User>> {
        let (after_time, after_id) = page.after.unzip();
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE deleted_at IS NULL
               AND ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))
               AND ($3::text IS NULL OR email_canonical LIKE $3 ESCAPE '\\' OR lower(name) LIKE $3 ESCAPE '\\')
             ORDER BY created_at, id LIMIT $4"
        );
        let params: Params<'_> = &[
            &after_time,
            &after_id,
            &page.like_pattern(),
            &i64::from(page.limit),
        ];
        let rows = self.query(&sql, params).await?;
        rows.iter().map(user_from_row).collect()
    }
}

/// Another live, unlocked admin than the user `$1`.
const ANOTHER_ADMIN: &str = "EXISTS (SELECT 1 FROM users other
                                     WHERE other.id <> $1 AND other.role = 'admin'
                                       AND NOT other.locked AND other.deleted_at IS NULL)";

/// Serialises the changes that can take an admin's rights away, to the end of the transaction:
/// under READ COMMITTED two of them would each still see the other's admin and both pass.
async fn lock_admins(tx: &deadpool_postgres::Transaction<'_>) -> StoreResult<()> {
    const ADMINS_LOCK: i64 = 0x6175_7468_6461_646d; // "authdadm"
    execute(tx, "SELECT pg_advisory_xact_lock($1)", &[&ADMINS_LOCK]).await?;
    Ok(())
}

async fn live_user_exists(tx: &deadpool_postgres::Transaction<'_>, id: Uuid) -> StoreResult<bool> {
    let sql = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)";
    exists(tx, sql, &[&id]).await
}

pub(super) fn user_from_row(row: &Row) -> StoreResult<User> {
    Ok(
        record!(row => User { id, email, name, role, email_verified, locked, created_at, updated_at }),
    )
}

fn credentials_from_row(row: &Row) -> StoreResult<UserCredentials> {
    Ok(UserCredentials {
        user: user_from_row(row)?,
        password_hash: row.column("password_hash")?,
        session_epoch: SessionEpoch(row.column("session_epoch")?),
    })
}
