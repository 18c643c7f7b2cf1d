//! What the flows share: the store, the actors' addresses, the outbox and the audit log, and the
//! steps several flows take (ending sessions, the per-account password allowance).

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use crate::actors::deferred::{Deferred, Run};
use crate::actors::hasher::HasherPool;
use crate::actors::rate_limiter::{ClearFailures, CountAction, RateLimiter, ReserveAttempt};
use crate::actors::tokens::{IssuedTokens, RevokeSessions, SessionScope, StartSession, TokenActor};
use crate::actors::Tracked;
use crate::breach::{BreachChecker, BreachVerdict};
use crate::cache::RateRule;
use crate::domain::assurance::{AuthMethods, StepUpRule};
use crate::domain::claims::AccessClaims;
use crate::domain::client::ClientContext;
use crate::domain::email::CanonicalEmail;
use crate::domain::lockout;
use crate::domain::messages::MessageKind;
use crate::domain::one_time::{OneTimeAction, OneTimeUse};
use crate::domain::opaque_token::OpaqueToken;
use crate::domain::password::{self, PasswordContext};
use crate::domain::user::User;
use crate::error::AppError;
use crate::flows::audit::{Audit, EventKind};
use crate::flows::outbox::Outbox;
use crate::store::{ConsumedToken, NewUser, RevokeReason, SessionEpoch, Store, StoreError};

/// What the command line says of an address [`address_retired`] closes.
pub const RETIRED_ADDRESS: &str =
    "belonged to a deleted account (auth.allow_email_reuse_after_delete is off)";

/// Whether `email` is closed to a new holder: a deleted account held it and `allow_reuse`
/// (`auth.allow_email_reuse_after_delete`) is off. Asked wherever an address gets a holder: a
/// signup, a provider's sign-up, an invitation, an address change, and the command line's
/// `users create` and `users import` (so importing a file again does not bring back an account
/// its owner deleted).
pub async fn address_retired(
    store: &dyn Store,
    allow_reuse: bool,
    email: &CanonicalEmail,
) -> Result<bool, StoreError> {
    if allow_reuse {
        return Ok(false);
    }
    store.email_held_by_deleted_user(email).await
}

/// The configured rules for new passwords: strength, and known breaches.
pub struct PasswordRules {
    pub min_score: u8,
    pub app_name: String,
    pub breaches: BreachChecker,
}

impl PasswordRules {
    /// Checks a new password for the account `email`/`name` (the policy, then known breaches)
    /// and answers the form to hash, or the error for `field`.
    pub async fn check_new(
        &self,
        raw: &str,
        email: &str,
        name: Option<&str>,
        field: &str,
    ) -> Result<String, AppError> {
        let context = PasswordContext::new(self.min_score, email, name, &self.app_name);
        let password = password::check_new(raw, &context)
            .map_err(|e| AppError::validation(field, e.message()))?;
        self.refuse_breached(&password, field).await?;
        Ok(password)
    }

    /// [`PasswordRules::check_new`] for an existing account's `newPassword` (change, reset).
    pub async fn check_replacement(&self, user: &User, raw: &str) -> Result<String, AppError> {
        self.check_new(raw, &user.email, user.name.as_deref(), "newPassword")
            .await
    }

    /// Refuses a password (its NFKC form) known from a breach; 503 when that cannot be told and
    /// `auth.breached_passwords.on_unavailable` is `refuse`.
    pub async fn refuse_breached(&self, password: &str, field: &str) -> Result<(), AppError> {
        match self.breaches.check(password).await {
            BreachVerdict::Clean => Ok(()),
            BreachVerdict::Breached => Err(AppError::validation(
                field,
                "appears in a known data breach; choose another",
            )),
            BreachVerdict::Unknown => Err(AppError::Unavailable(
                "the breached-password check is unavailable".into(),
            )),
        }
    }
}

/// When sensitive actions need a fresh proof (`auth.reauthentication_seconds`,
/// `auth.admin_reauthentication`).
#[derive(Debug, Clone, Copy)]
pub struct StepUpPolicy {
    pub rule: StepUpRule,
    pub admin_actions: bool,
}

/// [`FlowDeps::mail_allowed`]'s kind of the notice that an address has an account (to a signup,
/// a provider's sign-in or an address change that named it).
pub const ACCOUNT_EXISTS_MAIL: &str = "account_exists";
/// [`FlowDeps::mail_allowed`]'s kind of the notice to an account's address that a change away
/// from it was asked for.
pub const CHANGE_REQUESTED_MAIL: &str = "email_change_requested";

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
    pub step_up: StepUpPolicy,
    /// `auth.allow_email_reuse_after_delete`.
    pub allow_email_reuse_after_delete: bool,
    /// Mails of one kind one address may get per window (`auth.link_mails_per_address`).
    pub link_mails: RateRule,
}

impl FlowDeps {
    /// Tells the holder of `address` that someone tried to use it (a signup or a provider
    /// sign-in where signup hides which addresses have accounts), after the answer has gone:
    /// the lookup, the mail cap and the write then cost the answer nothing, whatever the
    /// address. A failure is logged.
    pub fn tell_account_exists_later(&self, address: CanonicalEmail) {
        let deps = self.clone();
        self.deferred.do_send(Run(Box::pin(async move {
            let tell = || deps.tell_account_exists(&address);
            if let Err(e) = retry_while_unavailable(tell).await {
                tracing::warn!(error = %e, "the account-exists notice was not queued");
            }
        })));
    }

    async fn tell_account_exists(&self, address: &CanonicalEmail) -> Result<(), AppError> {
        let Some(holder) = self.store.user_by_email(address).await? else {
            return Ok(());
        };
        if self.mail_allowed(ACCOUNT_EXISTS_MAIL, address).await? {
            let (to, name) = (&holder.user.email, holder.user.name_for_mail());
            self.outbox
                .send_notice(MessageKind::AccountExists, to, name)
                .await?;
        }
        Ok(())
    }

    /// Whether one more mail of `kind` may go to `address` this window (`link_mails`, each kind
    /// counted apart), counting it: no flooding a mailbox, whoever asks and however (a reset, a
    /// verification, a link to a new address, the notice that an address has an account). A
    /// request over it gets its usual answer and sends nothing.
    pub async fn mail_allowed(
        &self,
        kind: &'static str,
        address: &CanonicalEmail,
    ) -> Result<bool, AppError> {
        let key = format!("link-mail:{kind}:{}", address.as_str());
        let rule = self.link_mails;
        let allowed = self.limiter.send(CountAction { key, rule }).await?;
        if !allowed {
            tracing::info!(kind, "mail limit of the address reached; nothing sent");
            crate::metrics::email_flow(kind, "mail_limited");
        }
        Ok(allowed)
    }

    /// Creates the account; one whose address is not verified yet gets its verification mail in
    /// the same transaction, so it is never left without it.
    pub async fn create_account(
        &self,
        mut account: NewUser,
        provider: Option<&str>,
    ) -> Result<User, StoreError> {
        if !account.email_verified {
            let verification =
                self.outbox
                    .prepare_verification(account.id, account.email.as_str(), provider);
            account.verification = Some(verification);
        }
        let user = self.store.create_user(account).await?;
        if !user.email_verified {
            self.outbox.wake();
        }
        Ok(user)
    }

    /// Whether `email` is closed to a new holder (see [`address_retired`]).
    pub async fn address_retired(&self, email: &CanonicalEmail) -> Result<bool, AppError> {
        let reuse = self.allow_email_reuse_after_delete;
        Ok(address_retired(self.store.as_ref(), reuse, email).await?)
    }

    /// Whether `user`'s session `session_id` still lives: not revoked, not expired (idle or past
    /// its lifetime), the account not locked. What a session started and the owner finishes
    /// later by mail or through a provider (an address change, linking an identity) ends with
    /// it, so the owner's recovery (a reset, signing out everywhere) stops it too.
    pub async fn session_lives(&self, user: &User, session_id: Uuid) -> Result<bool, AppError> {
        if user.locked {
            return Ok(false);
        }
        let live = self.store.live_sessions(user.id).await?;
        Ok(live.iter().any(|session| session.id == session_id))
    }

    /// One live (not deleted) user, or `not_found`.
    pub async fn live_user(&self, id: Uuid) -> Result<User, AppError> {
        self.store.user_by_id(id).await?.ok_or(AppError::NotFound)
    }

    /// Refuses a session to an account that may not sign in now (locked by an admin; its address
    /// unverified where `require_verification`), recording it as a refused login with `details`
    /// and the reason.
    pub async fn refuse_locked_or_unverified(
        &self,
        user: &User,
        require_verification: bool,
        mut details: serde_json::Value,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        let (error, reason) = if user.locked {
            (AppError::AccountLocked, "account_locked")
        } else if require_verification && !user.email_verified {
            (AppError::EmailNotVerified, "email_not_verified")
        } else {
            return Ok(());
        };
        details["reason"] = json!(reason);
        self.audit
            .record(EventKind::LoginFailed, Some(user.id), client, details)
            .await;
        Err(error)
    }

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

    /// Opens a session for `user`, who just proved who they are with `methods`, on an account
    /// made just now (by a signup or a provider's first sign-in): nothing can have ended its
    /// sessions since (the store still refuses a locked or deleted user).
    pub async fn start_session(
        &self,
        user: &User,
        client: &ClientContext,
        methods: AuthMethods,
    ) -> Result<IssuedTokens, AppError> {
        // Refused only if an admin locked or deleted the new account in the meantime: the
        // answer of a login to it, not a 500.
        self.open_session(user, client, methods, None)
            .await?
            .ok_or(AppError::InvalidCredentials)
    }

    /// Opens a session for `user`, whose proof (a password, a pending login's first step, a
    /// sign-in mail, a passkey, a provider's link) was read under `epoch`: `refused` (and
    /// audited) when every session of the user has been ended since (a reset, a password
    /// change, "sign out everywhere", a lock), so a proof checked just before cannot open a
    /// session just after.
    pub async fn start_session_since(
        &self,
        user: &User,
        client: &ClientContext,
        methods: AuthMethods,
        epoch: SessionEpoch,
        refused: AppError,
    ) -> Result<IssuedTokens, AppError> {
        let started = self
            .open_session(user, client, methods, Some(epoch))
            .await?;
        if started.is_none() {
            let details = json!({ "reason": "sessions_ended" });
            self.audit
                .record(EventKind::LoginFailed, Some(user.id), client, details)
                .await;
        }
        started.ok_or(refused)
    }

    async fn open_session(
        &self,
        user: &User,
        client: &ClientContext,
        methods: AuthMethods,
        epoch: Option<SessionEpoch>,
    ) -> Result<Option<IssuedTokens>, AppError> {
        let (user_agent, ip) = client.session_fields();
        self.tokens
            .send(StartSession {
                user_id: user.id,
                role: user.role,
                user_agent,
                ip,
                methods,
                epoch,
            })
            .await?
    }

    /// Refuses a sensitive action (403 `reauthentication_required`) unless the caller's session
    /// proved itself recently, at level 2 when the account has a second factor.
    pub async fn require_step_up(&self, caller: &AccessClaims) -> Result<(), AppError> {
        let now = chrono::Utc::now().timestamp();
        let rule = self.step_up.rule;
        // The account is looked at only when its answer matters: a recent level-1 session.
        let allowed = rule.allows(caller.auth_time, caller.aal, false, now)
            && (caller.aal >= 2
                || rule.allows(
                    caller.auth_time,
                    caller.aal,
                    self.store.mfa_status(caller.sub).await?.enabled(),
                    now,
                ));
        if allowed {
            Ok(())
        } else {
            crate::metrics::mfa_outcome("step_up", "required");
            Err(AppError::ReauthenticationRequired)
        }
    }

    /// Checks the caller's current password before a sensitive change (`action`); a wrong one is
    /// a field error, not a 401, so that a frontend does not take it for an expired session.
    /// A stolen access token must not become a password oracle: the check shares the account's
    /// login allowance (reserved before hashing, 429 when spent) and every failure is audited.
    pub async fn check_password(
        &self,
        user_id: Uuid,
        field: &str,
        password: &str,
        action: &'static str,
        client: &ClientContext,
    ) -> Result<User, AppError> {
        if password.is_empty() {
            return Err(AppError::validation(field, "is required"));
        }
        let permit = self.hasher.reserve()?;
        let account = self
            .store
            .user_credentials_by_id(user_id)
            .await?
            .ok_or(AppError::TokenInvalid)?;
        let account_key = lockout::account_key(&account.user.email);
        self.reserve_attempt(&account_key).await?;
        let verification = permit
            .verify(
                &password::normalize(password),
                password::usable_hash(account.password_hash),
            )
            .await?;
        if !verification.matches {
            tracing::info!(%user_id, action, "current password check failed");
            let details = json!({ "action": action });
            self.audit
                .record(
                    EventKind::ReauthenticationFailed,
                    Some(user_id),
                    client,
                    details,
                )
                .await;
            return Err(AppError::validation(field, "is not the current password"));
        }
        self.clear_failures(account_key).await?;
        Ok(account.user)
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
                user.name_for_mail(),
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

/// Runs `step`, a step of work done after the answer (which no client will retry), again while
/// the store or the cache is unavailable: four more tries, 1, 2, 4 and 8 s apart (spread by a
/// fifth), so an outage of up to about 15 s loses nothing; then its error.
pub async fn retry_while_unavailable<T, Step>(mut step: impl FnMut() -> Step) -> Result<T, AppError>
where
    Step: std::future::Future<Output = Result<T, AppError>>,
{
    const RETRIES: u32 = 4;
    for retry in 1..=RETRIES {
        match step().await {
            Err(AppError::Unavailable(cause)) => {
                let wait = crate::domain::retry::backoff(
                    retry,
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(8),
                    rand::random(),
                );
                tracing::warn!(%cause, retry, ?wait, "a backend is unavailable; trying again");
                tokio::time::sleep(wait).await;
            }
            done => return done,
        }
    }
    step().await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn unavailable() -> AppError {
        AppError::Unavailable("the store is down".into())
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_is_tried_again_while_a_backend_is_unavailable() {
        let tries = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let done = retry_while_unavailable(|| async {
            let n = tries.fetch_add(1, Ordering::SeqCst) + 1;
            if n < 3 {
                Err(unavailable())
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(done.unwrap(), 3);
        // Waits of 1 s then 2 s, each spread by at most a fifth.
        let waited = started.elapsed();
        assert!(
            waited >= std::time::Duration::from_millis(2400),
            "{waited:?}"
        );
        assert!(
            waited <= std::time::Duration::from_millis(3600),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn it_gives_up_after_four_retries_and_never_retries_other_errors() {
        let tries = AtomicU32::new(0);
        let gave_up = retry_while_unavailable(|| async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(unavailable())
        })
        .await;
        assert!(matches!(gave_up, Err(AppError::Unavailable(_))));
        assert_eq!(tries.load(Ordering::SeqCst), 5);

        let tries = AtomicU32::new(0);
        let refused = retry_while_unavailable(|| async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(AppError::NotFound)
        })
        .await;
        assert!(matches!(refused, Err(AppError::NotFound)));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }
}
