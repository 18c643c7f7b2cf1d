//! Passwordless sign-in mails.

use async_trait::async_trait;
use uuid::Uuid;

use super::outbox::insert_email;
use super::{begin, commit, execute, query_opt, ttl, Columns, Params, PostgresStore};
use crate::domain::opaque_token::TokenHash;
use crate::store::*;

#[async_trait]
impl EmailLoginStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn create_email_login(
        &self,
        login: &NewEmailLogin,
        email: &OutboxEmail,
    ) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // FOR SHARE waits for an address change in flight and then sees its outcome.
        let holder = "SELECT session_epoch FROM users
                      WHERE id = $1 AND email_canonical = $2 AND deleted_at IS NULL FOR SHARE";
        let address = login.address.as_str();
        let Some(holder) = query_opt(&tx, holder, &[&login.user_id, &address]).await? else {
            return Ok(false);
        };
        let epoch: i64 = holder.column("session_epoch")?;
        let unused = "DELETE FROM email_logins WHERE user_id = $1 AND consumed_at IS NULL";
        execute(&tx, unused, &[&login.user_id]).await?;
        let insert =
            "INSERT INTO email_logins (link_hash, user_id, code_hash, expires_at, session_epoch)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)";
        let (link, code) = (login.link_hash.as_slice(), login.code_hash.as_slice());
        let lifetime = ttl(login.ttl_seconds);
        let values: Params = &[&link, &login.user_id, &code, &lifetime, &epoch];
        execute(&tx, insert, values).await?;
        insert_email(&tx, email).await?;
        commit(tx).await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn use_email_login(&self, link_hash: TokenHash) -> StoreResult<Option<UsedEmailLogin>> {
        let row = self
            .query_opt(
                "UPDATE email_logins SET consumed_at = now()
                 WHERE link_hash = $1 AND consumed_at IS NULL AND expires_at > now()
                 RETURNING user_id, session_epoch",
                &[&link_hash.as_slice()],
            )
            .await?;
        row.map(|row| {
            let epoch = SessionEpoch(row.column("session_epoch")?);
            Ok(UsedEmailLogin {
                user_id: row.column("user_id")?,
                epoch,
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn attempt_email_login_code(
        &self,
        user_id: Uuid,
        max_attempts: u32,
    ) -> StoreResult<Option<EmailLoginCode>> {
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let sql = super::attempt_statement("email_logins", "user_id", "link_hash, code_hash");
        let row = self.query_opt(&sql, &[&user_id, &max_attempts]).await?;
        row.map(|row| {
            let hash = |column| -> StoreResult<TokenHash> {
                let bytes: Vec<u8> = row.column(column)?;
                bytes
                    .try_into()
                    .map_err(|_| StoreError::Backend(format!("{column} is not 32 bytes")))
            };
            Ok(EmailLoginCode {
                link_hash: hash("link_hash")?,
                code_hash: hash("code_hash")?,
            })
        })
        .transpose()
    }
}
