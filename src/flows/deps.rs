//! What the flows share: the store, the actors' addresses, the outbox and the audit log, and the
//! steps several flows take (ending sessions, the per-account password allowance).

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use crate::actors::deferred::Deferred;
use crate::actors::hasher::HasherPool;
use crate::actors::rate_limiter::{ClearFailures, RateLimiter, ReserveAttempt};
use crate::actors::tokens::{RevokeSessions, SessionScope, TokenActor};
use crate::actors::Tracked;
use crate::domain::client::ClientContext;
use crate::domain::messages::MessageKind;
use crate::domain::one_time::{OneTimeAction, OneTimeUse};
use crate::domain::opaque_token::OpaqueToken;
use crate::domain::password::{self, PasswordContext};
use crate::domain::user::User;
use crate::error::AppError;
use crate::flows::audit::{Audit, EventKind};
use crate::flows::outbox::Outbox;
use crate::store::{ConsumedToken, RevokeReason, Store};

/// The configured password-strength rules.
#[derive(Debug, Clone)]
pub struct PasswordRules {
    pub min_score: u8,
    pub app_name: String,
}

impl PasswordRules {
    /// Checks a new password for the account `email`/`name` and answers the form to hash, or the
    /// error for `field`.
    pub fn check_new(
        &self,
        raw: &str,
        email: &str,
        name: Option<&str>,
        field: &str,
    ) -> Result<String, AppError> {
        let context = PasswordContext::new(self.min_score, email, name, &self.app_name);
        password::check_new(raw, &context).map_err(|e| AppError::validation(field, e.message()))
    }

    /// [`PasswordRules::check_new`] for an existing account's `newPassword` (change, reset).
    pub fn check_replacement(&self, user: &User, raw: &str) -> Result<String, AppError> {
        self.check_new(raw, &user.email, user.name.as_deref(), "newPassword")
    }
}

/// What every flow is built from, shared rather than copied: one set per HTTP worker, since the
/// actor addresses are per worker.
#[derive(Clone)]
pub struct FlowDeps {
    pub store: Arc<dyn Store>,
    /// Work done after the answer (on the main arbiter, drained at shutdown).
    pub deferred: actix::Addr<Deferred>,
    pub hasher: HasherPool,
    pub tokens: Tracked<TokenActor>,
    pub limiter: Tracked<RateLimiter>,
    pub outbox: Outbox,
    pub audit: Audit,
    pub password_rules: Arc<PasswordRules>,
}

impl FlowDeps {
    /// Revokes the user's sessions in `scope` for `reason`; answers how many were live.
    pub async fn revoke_sessions(
        &self,
        user_id: Uuid,
        scope: SessionScope,
        reason: RevokeReason,
    ) -> Result<usize, AppError> {
        self.tokens
            .send(RevokeSessions {
                user_id,
                scope,
                reason,
            })
            .await?
    }

    /// Reserves one password attempt for the account behind `account_key` (login or
    /// re-authentication: one allowance for both), or answers 429 with the wait it owes.
    pub async fn reserve_attempt(&self, account_key: &str) -> Result<(), AppError> {
        let wait = self
            .limiter
            .send(ReserveAttempt {
                account_key: account_key.to_string(),
            })
            .await?;
        match wait {
            Some(retry_after) => {
                crate::metrics::rate_limited("account");
                Err(AppError::LoginThrottled { retry_after })
            }
            None => Ok(()),
        }
    }

    /// The right password: the account's failures are forgotten.
    /// The presented token if it is usable for `wanted` (used up with
    /// [`OneTimeAction::Consume`]); otherwise `one_time_token_invalid`.
    pub async fn one_time_token(
        &self,
        token: &OpaqueToken,
        wanted: OneTimeUse<'_>,
        action: OneTimeAction,
    ) -> Result<ConsumedToken, AppError> {
        self.store
            .one_time_token(token.hash(), &wanted, action)
            .await?
            .ok_or(AppError::OneTimeTokenInvalid)
    }

    /// Forgets an account's failed attempts after a right password.
    pub async fn clear_failures(&self, account_key: String) -> Result<(), AppError> {
        Ok(self.limiter.send(ClearFailures { account_key }).await?)
    }

    /// After a password change or reset: stores the new hash (retiring every reset link of the
    /// account), ends the sessions of `scope`, mails the owner a notice and records `event`.
    /// Answers how many sessions ended.
    pub async fn replace_password(
        &self,
        user: &User,
        hash: &str,
        scope: SessionScope,
        reason: RevokeReason,
        event: EventKind,
        client: &ClientContext,
    ) -> Result<usize, AppError> {
        self.store.set_password(user.id, hash).await?;
        let revoked = self.revoke_sessions(user.id, scope, reason).await?;
        tracing::info!(user_id = %user.id, revoked, reason = reason.as_str(), "password replaced");
        self.outbox
            .send_notice(
                MessageKind::PasswordChanged,
                &user.email,
                user.name.as_deref(),
            )
            .await?;
        self.audit
            .record(
                event,
                Some(user.id),
                client,
                json!({ "revokedSessions": revoked }),
            )
            .await;
        Ok(revoked)
    }
}
