//! Passwordless sign-in mails.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::outbox::insert_email;
use super::{now_micros, now_value, seconds_to_micros, text, Columns, SqliteStore};
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

#[async_trait]
impl EmailLoginStore for SqliteStore {
    async fn create_email_login(
        &self,
        login: &NewEmailLogin,
        email: &OutboxEmail,
    ) -> StoreResult<bool> {
        let (login, email) = (login.clone(), email.clone());
        self.write(move |tx| {
            let now = now_micros();
            let user = login.user_id.to_string();
            let holder: Option<i64> = tx
                .prepare_cached(
                    "SELECT session_epoch FROM users
                     WHERE id = ?1 AND email_canonical = ?2 AND deleted_at IS NULL",
                )?
                .query_row(params![user, login.address.as_str()], |row| row.get(0))
                .optional()?;
            let Some(epoch) = holder else {
                return Ok(false);
            };
            tx.prepare_cached(
                "DELETE FROM email_logins WHERE user_id = ?1 AND consumed_at IS NULL",
            )?
            .execute([&user])?;
            tx.prepare_cached(
                "INSERT INTO email_logins (link_hash, user_id, code_hash, created_at, expires_at,
                                           session_epoch)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                login.link_hash.as_slice(),
                user,
                login.code_hash.as_slice(),
                now,
                now.saturating_add(seconds_to_micros(login.ttl_seconds)),
                epoch
            ])?;
            insert_email(tx, &email, now)?;
            Ok(true)
        })
        .await
    }

    async fn use_email_login(&self, link_hash: TokenHash) -> StoreResult<Option<UsedEmailLogin>> {
        let sql = "UPDATE email_logins SET consumed_at = ?2
                   WHERE link_hash = ?1 AND consumed_at IS NULL AND expires_at > ?2
                   RETURNING user_id, session_epoch";
        let values = vec![link_hash.to_vec().into(), now_value()];
        self.query_opt(sql.into(), values, |row| {
            let epoch = SessionEpoch(row.column("session_epoch")?);
            Ok(UsedEmailLogin {
                user_id: row.column("user_id")?,
                epoch,
            })
        })
        .await
    }

    async fn attempt_email_login_code(
        &self,
        user_id: Uuid,
        max_attempts: u32,
    ) -> StoreResult<Option<EmailLoginCode>> {
        let sql = super::attempt_statement("email_logins", "user_id", "link_hash, code_hash");
        let values = vec![text(user_id), now_value(), max_attempts.into()];
        self.query_opt(sql, values, |row| {
            let hash = |column| -> rusqlite::Result<TokenHash> {
                let bytes: Vec<u8> = row.column(column)?;
                bytes.try_into().map_err(|_| super::corrupt(column))
            };
            Ok(EmailLoginCode {
                link_hash: hash("link_hash")?,
                code_hash: hash("code_hash")?,
            })
        })
        .await
    }
}
