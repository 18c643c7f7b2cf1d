//! The emailed flows: email verification and its resend, forgotten and reset passwords, and the
//! exchange of an emailed token for a short-lived follow-up cookie. Answers to "send me a mail"
//! requests are the same whether or not the address has an account, and come before any work for
//! the address is done, so their timing says nothing either.

use serde_json::{json, Value};

use crate::actors::deferred::Run;
use crate::actors::tokens::SessionScope;
use crate::domain::client::ClientContext;
use crate::domain::email::EmailAddress;
use crate::domain::lockout;
use crate::domain::one_time::{OneTimeAction, OneTimeUse, TokenKind};
use crate::domain::opaque_token::OpaqueToken;
use crate::domain::user::User;
use crate::error::AppError;
use crate::flows::audit::EventKind;
use crate::flows::deps::FlowDeps;
use crate::store::{ConsumedToken, RevokeReason};

#[derive(Clone)]
pub struct EmailLinkService {
    deps: FlowDeps,
}

/// What `POST /auth/tokens/validate` learned, and the follow-up token for the cookie.
pub struct ValidatedToken {
    pub kind: TokenKind,
    pub metadata: Value,
    pub follow_up: OpaqueToken,
}

fn presented(token: &str) -> Result<OpaqueToken, AppError> {
    OpaqueToken::parse(token).ok_or(AppError::OneTimeTokenInvalid)
}

fn checked_email(raw: &str) -> Result<EmailAddress, AppError> {
    EmailAddress::parse(raw).map_err(|e| AppError::validation("email", e.message()))
}

impl EmailLinkService {
    pub fn new(deps: FlowDeps) -> Self {
        EmailLinkService { deps }
    }

    /// Uses up a presented token if it is usable for `wanted`; otherwise `one_time_token_invalid`.
    async fn use_token(
        &self,
        token: &str,
        wanted: OneTimeUse<'_>,
    ) -> Result<ConsumedToken, AppError> {
        let token = presented(token)?;
        let consume = OneTimeAction::Consume;
        self.deps.one_time_token(&token, wanted, consume).await
    }

    /// Marks the email verified; the token is used up.
    pub async fn verify_email(&self, token: &str, client: &ClientContext) -> Result<(), AppError> {
        let consumed = self
            .use_token(token, OneTimeUse::any(&[TokenKind::EmailVerification]))
            .await?;
        let user_id = consumed.user_id.ok_or(AppError::OneTimeTokenInvalid)?;
        if !self.deps.store.mark_email_verified(user_id).await? {
            return Err(AppError::OneTimeTokenInvalid);
        }
        tracing::info!(%user_id, "email verified");
        self.deps
            .audit
            .record(EventKind::EmailVerified, Some(user_id), client, json!({}))
            .await;
        Ok(())
    }

    /// Sends a new verification mail if the address has an unverified account; silent otherwise.
    pub fn resend_verification(&self, raw_email: &str) -> Result<(), AppError> {
        self.mail_link(
            raw_email,
            "resend verification",
            TokenKind::EmailVerification,
            |user| !user.email_verified,
        )
    }

    /// Sends a reset mail if the address has an account; silent otherwise.
    pub fn forgot_password(&self, raw_email: &str) -> Result<(), AppError> {
        self.mail_link(
            raw_email,
            "forgot password",
            TokenKind::PasswordReset,
            |_| true,
        )
    }

    /// Checks the address now; after the answer, mails a `kind` link if it has an account that
    /// `wanted` accepts.
    fn mail_link(
        &self,
        raw_email: &str,
        what: &'static str,
        kind: TokenKind,
        wanted: fn(&User) -> bool,
    ) -> Result<(), AppError> {
        let address = checked_email(raw_email)?;
        self.after_answer(what, move |this| async move {
            let account = this.deps.store.user_by_email(address.canonical()).await?;
            if let Some(user) = account.map(|a| a.user).filter(wanted) {
                let outbox = &this.deps.outbox;
                let name = user.name.as_deref();
                let prepared =
                    outbox.prepare_token(kind, Some(user.id), &user.email, name, &json!({}));
                outbox.send_token(prepared).await?;
            }
            Ok(())
        });
        Ok(())
    }

    /// Runs the work of a "send me a mail" request after its answer has gone: a known address
    /// (a lookup, a token and a mail written) and an unknown one (a lookup) then answer alike in
    /// time too. A failure is logged; the client may ask again.
    fn after_answer<F, Fut>(&self, what: &'static str, work: F)
    where
        F: FnOnce(EmailLinkService) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), AppError>> + Send + 'static,
    {
        let this = self.clone();
        self.deps.deferred.do_send(Run(Box::pin(async move {
            if let Err(e) = work(this).await {
                tracing::warn!(error = %e, "{what}: the mail was not queued");
            }
        })));
    }

    /// Sets a new password with a reset token and ends every session of the account. The policy
    /// is checked before the token is used up, so a refused password does not burn the link.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client: &ClientContext,
    ) -> Result<usize, AppError> {
        let token = presented(token)?;
        let wanted = OneTimeUse::any(&[TokenKind::PasswordReset]);
        let peeked = self
            .deps
            .one_time_token(&token, wanted, OneTimeAction::Peek);
        let peeked = peeked.await?;
        let user_id = peeked.user_id.ok_or(AppError::OneTimeTokenInvalid)?;
        let user = self
            .deps
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AppError::OneTimeTokenInvalid)?;
        let new_password = self
            .deps
            .password_rules
            .check_replacement(&user, new_password)
            .await?;
        let hash = self.deps.hasher.hash(&new_password).await?;
        // Only one request can use the token, even if two got this far together.
        let consumed = self
            .deps
            .one_time_token(&token, wanted, OneTimeAction::Consume);
        consumed.await?;
        // Following the emailed link proved the address is theirs.
        self.deps.store.mark_email_verified(user.id).await?;
        // Whoever was guessing the old password is no reason to keep the owner waiting.
        self.deps
            .clear_failures(lockout::account_key(&user.email))
            .await?;
        // Every other reset link of the account is retired with it.
        self.deps
            .replace_password(
                &user,
                &hash,
                SessionScope::All,
                RevokeReason::PasswordReset,
                EventKind::PasswordReset,
                client,
            )
            .await
    }

    /// Uses up an emailed token and answers what it is for, with a follow-up token (one hour) for
    /// the `one_time_token` cookie that authorises the next step.
    pub async fn validate_token(&self, token: &str) -> Result<ValidatedToken, AppError> {
        // A follow-up token is not exchanged again: a link's life ends an hour after it was first
        // opened, however often the cookie is replayed here.
        let wanted = OneTimeUse::emailed(&[
            TokenKind::EmailVerification,
            TokenKind::PasswordReset,
            TokenKind::Invitation,
        ]);
        let consumed = self.use_token(token, wanted).await?;
        let follow_up = self.deps.outbox.follow_up(&consumed).await?;
        let metadata = serde_json::from_str(&consumed.metadata).unwrap_or_else(|_| json!({}));
        Ok(ValidatedToken {
            kind: consumed.kind,
            metadata,
            follow_up,
        })
    }
}
