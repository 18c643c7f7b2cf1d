//! The emailed flows: email verification and its resend, forgotten and reset passwords,
//! passwordless sign-in, the confirmation of a new address, and the exchange of an emailed token
//! for a short-lived follow-up cookie. Answers to "send me a mail" requests are the same whether
//! or not the address has an account, and come before any work for the address is done, so their
//! timing says nothing either.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::actors::deferred::Run;
use crate::actors::rate_limiter::CountAction;
use crate::actors::tokens::SessionScope;
use crate::cache::RateRule;
use crate::config::{PasswordlessSettings, Secret};
use crate::domain::assurance::{AuthMethod, AuthMethods};
use crate::domain::claims::AccessClaims;
use crate::domain::client::ClientContext;
use crate::domain::email::{CanonicalEmail, EmailAddress};
use crate::domain::email_code;
use crate::domain::lockout;
use crate::domain::messages::MessageKind;
use crate::domain::one_time::{EmailChangeOrigin, OneTimeAction, OneTimeUse, TokenKind};
use crate::domain::opaque_token::OpaqueToken;
use crate::domain::password;
use crate::domain::user::User;
use crate::error::AppError;
use crate::flows::audit::EventKind;
use crate::flows::auth::LoginOutcome;
use crate::flows::deps::{retry_while_unavailable, FlowDeps};
use crate::flows::mfa::{AfterFirstFactor, MfaService};
use crate::store::{
    ConsumedToken, FactorChoice, NewEmailLogin, RevokeReason, StoreError, UsedEmailLogin,
};

/// The least time a sign-in code's answer takes, however it went: far above what checking a code
/// costs (a few milliseconds, a little more with a mail pending), so the time of a refusal does
/// not tell an address with an account and a pending mail from any other. Measured by
/// `load-tests/email_code_timing.py`.
const CODE_ANSWER_FLOOR: Duration = Duration::from_millis(100);

/// How long a mail-me request asks the store whether it is up before answering anyway.
const STORE_CHECK: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct EmailLinkService {
    deps: FlowDeps,
    mfa: MfaService,
    passwordless: Arc<PasswordlessRules>,
}

/// Passwordless sign-in by email, as configured.
pub struct PasswordlessRules {
    pub settings: PasswordlessSettings,
    /// Keys the codes' HMAC (`domain::email_code`).
    pub code_key: Secret,
}

/// What a passwordless sign-in presents: the mailed link's token, or the address and its code.
pub enum EmailLoginProof {
    Link(String),
    Code { email: String, code: String },
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
    pub fn new(deps: FlowDeps, mfa: MfaService, passwordless: Arc<PasswordlessRules>) -> Self {
        EmailLinkService {
            deps,
            mfa,
            passwordless,
        }
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

    /// The live account a token was issued for; `token_invalid` when there is none any more.
    async fn token_owner(&self, token: &ConsumedToken) -> Result<User, AppError> {
        let user_id = token.user_id.ok_or(AppError::OneTimeTokenInvalid)?;
        let user = self.deps.store.user_by_id(user_id).await?;
        user.ok_or(AppError::OneTimeTokenInvalid)
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
    pub async fn resend_verification(&self, raw_email: &str) -> Result<(), AppError> {
        self.mail_link(
            raw_email,
            "resend verification",
            TokenKind::EmailVerification,
            |user| !user.email_verified,
        )
        .await
    }

    /// Sends a reset mail if the address has an account; silent otherwise.
    pub async fn forgot_password(&self, raw_email: &str) -> Result<(), AppError> {
        self.mail_link(
            raw_email,
            "forgot password",
            TokenKind::PasswordReset,
            |_| true,
        )
        .await
    }

    /// Checks the address now; after the answer, mails a `kind` link if it has an account that
    /// `wanted` accepts.
    async fn mail_link(
        &self,
        raw_email: &str,
        what: &'static str,
        kind: TokenKind,
        wanted: fn(&User) -> bool,
    ) -> Result<(), AppError> {
        let address = checked_email(raw_email)?;
        self.after_answer(what, move |this| async move {
            let account = this.account_at(&address).await?;
            if let Some(user) = account.filter(wanted) {
                if !this
                    .deps
                    .mail_allowed(kind.as_str(), address.canonical())
                    .await?
                {
                    return Ok(());
                }
                let outbox = &this.deps.outbox;
                let name = user.name_for_mail();
                let prepared =
                    outbox.prepare_token(kind, Some(user.id), &user.email, name, &json!({}));
                let send = || outbox.send_token(prepared.clone());
                retry_while_unavailable(send).await?;
            }
            Ok(())
        })
        .await
    }

    /// The account holding `address`, for work done after the answer: looked up again while
    /// the store is unavailable (see [`retry_while_unavailable`]).
    async fn account_at(&self, address: &EmailAddress) -> Result<Option<User>, AppError> {
        let (store, canonical) = (&self.deps.store, address.canonical());
        let lookup = move || async move { Ok(store.user_by_email(canonical).await?) };
        let account = retry_while_unavailable(lookup).await?;
        Ok(account.map(|account| account.user))
    }

    /// Runs the work of a "send me a mail" request after its answer has gone: a known address
    /// (a lookup, a token and a mail written) and an unknown one (a lookup) then answer alike in
    /// time too. The store is asked first, the same for every address, so that while it is down
    /// the answer is 503 (ask again) rather than a promise nobody keeps; one that is only slow
    /// (busy, locked) is not waited for beyond [`STORE_CHECK`], since the answer must not wait on
    /// the work. A store or cache that drops out after the answer is waited for a little
    /// ([`retry_while_unavailable`]); a failure past that is logged.
    async fn after_answer<F, Fut>(&self, what: &'static str, work: F) -> Result<(), AppError>
    where
        F: FnOnce(EmailLinkService) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), AppError>> + Send + 'static,
    {
        if let Ok(reachable) = tokio::time::timeout(STORE_CHECK, self.deps.store.ping()).await {
            reachable?;
        }
        let this = self.clone();
        self.deps.deferred.do_send(Run(Box::pin(async move {
            if let Err(e) = work(this).await {
                tracing::warn!(error = %e, "{what}: the mail was not queued");
            }
        })));
        Ok(())
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
        let user = self.token_owner(&peeked).await?;
        // A link mailed to an address the account has since left opens nothing, one written
        // while the change went through included (the change retires those already written).
        if CanonicalEmail::of(&peeked.email) != CanonicalEmail::of(&user.email) {
            return Err(AppError::OneTimeTokenInvalid);
        }
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
        self.deps.store.mark_email_verified(user.id).await?;
        // Whoever was guessing the old password is no reason to keep the owner waiting.
        self.deps
            .clear_failures(lockout::account_key(&user.email))
            .await?;
        // Every other reset link of the account is retired with it, and every session ends.
        let revoked = self
            .deps
            .replace_password(
                &user,
                &hash,
                SessionScope::All,
                RevokeReason::PasswordReset,
                EventKind::PasswordReset,
                client,
            )
            .await?;
        // Following the emailed link proved the address is theirs: whatever was set up before
        // the proof goes too, once no session of whoever set it up is left to add more.
        if !user.email_verified {
            self.remove_unproven_ways_in(&user).await?;
        }
        Ok(revoked)
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
            TokenKind::EmailChange,
        ]);
        let consumed = self.use_token(token, wanted).await?;
        let follow_up = self.deps.outbox.follow_up(&consumed).await?;
        // An address change's metadata is the session that asked: the server's, not the page's.
        let metadata = match consumed.kind {
            TokenKind::EmailChange => json!({}),
            _ => serde_json::from_str(&consumed.metadata).unwrap_or_else(|_| json!({})),
        };
        Ok(ValidatedToken {
            kind: consumed.kind,
            metadata,
            follow_up,
        })
    }

    /// Passwordless sign-in, first step: after the answer, a mail with a link and a code goes to
    /// the address if it has an account that may sign in, at most `max_mails` per window.
    pub async fn request_email_login(&self, raw_email: &str) -> Result<(), AppError> {
        if !self.passwordless.settings.enabled {
            return Err(AppError::FeatureDisabled);
        }
        let address = checked_email(raw_email)?;
        self.after_answer("passwordless sign-in", move |this| async move {
            let account = this.account_at(&address).await?;
            let Some(user) = account.filter(|user| !user.locked) else {
                return Ok(());
            };
            let settings = &this.passwordless.settings;
            let rule = RateRule {
                max: settings.max_mails,
                window: Duration::from_secs(settings.mail_window_seconds),
            };
            let key = format!("email-login-mail:{}", address.canonical().as_str());
            if !this.deps.limiter.send(CountAction { key, rule }).await? {
                tracing::info!(user_id = %user.id, "sign-in mail limit reached; nothing sent");
                crate::metrics::email_flow("email_login", "mail_limited");
                return Ok(());
            }
            let link = OpaqueToken::generate();
            let code = email_code::generate();
            let key = this.passwordless.code_key.expose().as_bytes();
            let lifetime = Duration::from_secs(settings.ttl_seconds);
            let mail = this.deps.outbox.email_login(
                &user.email,
                user.name_for_mail(),
                &link,
                &code,
                lifetime,
            );
            let login = NewEmailLogin {
                link_hash: link.hash(),
                user_id: user.id,
                address: CanonicalEmail::of(&user.email),
                code_hash: email_code::code_hash(key, user.id, &code),
                ttl_seconds: settings.ttl_seconds,
            };
            let (store, login, mail) = (&this.deps.store, &login, &mail);
            let write = move || async move { Ok(store.create_email_login(login, mail).await?) };
            if !retry_while_unavailable(write).await? {
                tracing::info!(user_id = %user.id, "the address changed meanwhile; nothing sent");
                return Ok(());
            }
            this.deps.outbox.wake();
            crate::metrics::email_flow("email_login", "mailed");
            Ok(())
        })
        .await
    }

    /// Passwordless sign-in, second step: the link's token, or the address and its code (a few
    /// submissions per mail, and the account's capped doubling). One factor, the mailbox
    /// (`amr` `email`), never a second one: an account with a factor still gives it.
    #[tracing::instrument(skip_all)]
    pub async fn email_login(
        &self,
        proof: EmailLoginProof,
        client: &ClientContext,
    ) -> Result<LoginOutcome, AppError> {
        if !self.passwordless.settings.enabled {
            return Err(AppError::FeatureDisabled);
        }
        let used = match proof {
            EmailLoginProof::Link(token) => {
                let token = presented(&token)?;
                self.deps.store.use_email_login(token.hash()).await?
            }
            EmailLoginProof::Code { email, code } => {
                // A pending mail costs writes that an unknown address (or one with no mail) does
                // not; the answer waits out CODE_ANSWER_FLOOR so its time says nothing of which.
                let answer_at = tokio::time::Instant::now() + CODE_ANSWER_FLOOR;
                let checked = self.check_code(&email, &code, client).await;
                tokio::time::sleep_until(answer_at).await;
                checked?
            }
        };
        let user = match used {
            Some(used) => self.deps.store.user_by_id(used.user_id).await?,
            None => None,
        };
        let (Some(mut user), Some(UsedEmailLogin { mut epoch, .. })) = (user, used) else {
            crate::metrics::email_flow("email_login", "invalid");
            return Err(AppError::OneTimeTokenInvalid);
        };
        let details = json!({ "method": "email" });
        self.deps
            .refuse_locked_or_unverified(&user, false, details.clone(), client)
            .await?;
        // The mail reached the address: it is verified now, and whatever whoever signed the
        // account up set before that goes, their password and sessions included.
        if !user.email_verified {
            let store = &self.deps.store;
            store.set_password(user.id, password::NO_PASSWORD).await?;
            let revoked = store
                .revoke_user_sessions(user.id, None, RevokeReason::PasswordReset)
                .await?;
            // These endings counted the epoch up twice (before and after the removal below); any
            // other since the mail was sent makes the session below refused, as without them.
            epoch = epoch.next().next();
            // Once no session of whoever set them up is left to add more.
            self.remove_unproven_ways_in(&user).await?;
            store.mark_email_verified(user.id).await?;
            user.email_verified = true;
            let details = json!({ "method": "email_login", "revokedSessions": revoked.len() });
            self.deps
                .audit
                .record(EventKind::EmailVerified, Some(user.id), client, details)
                .await;
        }
        let methods = AuthMethods::of(&[AuthMethod::EmailLink]);
        let refused = AppError::OneTimeTokenInvalid;
        let next = self
            .mfa
            .after_first_factor(&user, methods, Some(epoch), refused, client);
        let tokens = match next.await? {
            AfterFirstFactor::SignedIn(tokens) => tokens,
            AfterFirstFactor::SecondStep(challenge) => {
                return Ok(LoginOutcome::MfaRequired(challenge));
            }
        };
        tracing::info!(user_id = %user.id, "logged in by email");
        crate::metrics::email_flow("email_login", "signed_in");
        let details = json!({ "sessionId": tokens.session_id, "method": "email" });
        self.deps
            .audit
            .record(EventKind::LoginSucceeded, Some(user.id), client, details)
            .await;
        Ok(LoginOutcome::SignedIn(user, tokens))
    }

    /// Account pre-hijacking: someone signs up with another person's address (with a password,
    /// or through a provider that did not verify it), adds a second factor, a passkey or a
    /// provider's identity, and waits for the owner to use the account. When the mailbox's owner
    /// first proves the address (a sign-in mail, a reset), those go, identities included even
    /// when one is the account's only other way in: they were set up by someone who never
    /// showed they hold the address, and the owner now signs in by mail or the new password.
    /// The callers replace the password and end the sessions first (so no session of whoever
    /// set them up is left to add more); this ends them once more after the removal, which
    /// refuses any sign-in whose passkey or identity was read before it (one more count of the
    /// [`SessionEpoch`](crate::store::SessionEpoch)).
    async fn remove_unproven_ways_in(&self, user: &User) -> Result<(), AppError> {
        let store = &self.deps.store;
        store.remove_identities(user.id).await?;
        store.remove_factors(user.id, FactorChoice::All).await?;
        store
            .revoke_user_sessions(user.id, None, RevokeReason::PasswordReset)
            .await?;
        Ok(())
    }

    /// The account whose live sign-in mail carries `code`, the mail used up; `None` otherwise.
    /// Guesses count against the account like wrong passwords, unknown addresses alike.
    async fn check_code(
        &self,
        raw_email: &str,
        code: &str,
        client: &ClientContext,
    ) -> Result<Option<UsedEmailLogin>, AppError> {
        let address = checked_email(raw_email)?;
        let store = &self.deps.store;
        // Looked up before the attempt is counted, so a store that cannot answer costs nothing.
        let account = store.user_by_email(address.canonical()).await?;
        let throttle_key = format!("email-code:{}", lockout::account_key(address.as_str()));
        self.deps.reserve_attempt(&throttle_key).await?;
        // An unknown address runs the same statement (for no row); what still differs (the
        // writes a pending mail costs) is hidden by the caller's CODE_ANSWER_FLOOR.
        let user_id = account
            .as_ref()
            .map_or(uuid::Uuid::nil(), |account| account.user.id);
        let max = self.passwordless.settings.max_code_attempts;
        let Some(stored) = store.attempt_email_login_code(user_id, max).await? else {
            // Audited like a wrong code, so that every refused code costs the same write.
            let (user_id, reason) = match account {
                Some(_) => (Some(user_id), "no_email_code"),
                None => (None, "unknown_email"),
            };
            let details = json!({ "reason": reason });
            self.deps
                .audit
                .record(EventKind::LoginFailed, user_id, client, details)
                .await;
            return Ok(None);
        };
        let key = self.passwordless.code_key.expose().as_bytes();
        if !email_code::matches(key, user_id, code, &stored.code_hash) {
            crate::metrics::email_flow("email_login", "wrong_code");
            let details = json!({ "reason": "wrong_email_code" });
            self.deps
                .audit
                .record(EventKind::LoginFailed, Some(user_id), client, details)
                .await;
            return Ok(None);
        }
        self.deps.clear_failures(throttle_key).await?;
        store
            .use_email_login(stored.link_hash)
            .await
            .map_err(Into::into)
    }

    /// Confirms a new address with the token mailed to it: the account's address changes, and
    /// its sessions end but the caller's (when the confirming browser is signed in to it). The
    /// session that asked for the change must still be live (see [`EmailChangeOrigin`]); every
    /// link mailed to the old address stops working (the store's `change_email`).
    pub async fn confirm_email_change(
        &self,
        token: &str,
        caller: Option<&AccessClaims>,
        client: &ClientContext,
    ) -> Result<usize, AppError> {
        let consumed = self
            .use_token(token, OneTimeUse::any(&[TokenKind::EmailChange]))
            .await?;
        let user = self.token_owner(&consumed).await?;
        let user_id = user.id;
        let origin: EmailChangeOrigin =
            serde_json::from_str(&consumed.metadata).map_err(|_| AppError::OneTimeTokenInvalid)?;
        if !self.deps.session_lives(&user, origin.session_id).await? {
            tracing::info!(%user_id, "address change refused: the session that asked has ended");
            return Err(AppError::OneTimeTokenInvalid);
        }
        let new_email =
            EmailAddress::parse(&consumed.email).map_err(|_| AppError::OneTimeTokenInvalid)?;
        if self.deps.address_retired(new_email.canonical()).await? {
            return Err(AppError::EmailTaken);
        }
        // The session is checked again as the address moves: an ending in between (the owner's
        // reset, say) must not be followed by the address it did not see.
        let changed = self
            .deps
            .store
            .change_email(user.id, &new_email, origin.session_id)
            .await;
        match changed {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(%user_id, "address change refused: the account is gone");
                return Err(AppError::OneTimeTokenInvalid);
            }
            Err(StoreError::SessionEnded) => {
                tracing::info!(%user_id, "address change refused: the session that asked has ended");
                return Err(AppError::OneTimeTokenInvalid);
            }
            Err(e) => return Err(e.into()),
        }
        let scope = match caller {
            Some(claims) if claims.sub == user.id => SessionScope::AllExcept(claims.sid),
            _ => SessionScope::All,
        };
        let ended = self
            .deps
            .revoke_sessions(user.id, scope, RevokeReason::EmailChanged)
            .await?;
        let name = user.name_for_mail();
        self.deps
            .outbox
            .send_notice_about(
                MessageKind::EmailChanged,
                &user.email,
                name,
                new_email.as_str(),
            )
            .await?;
        tracing::info!(%user_id, "address changed");
        crate::metrics::email_flow("email_change", "changed");
        self.deps
            .audit
            .record(
                EventKind::EmailChanged,
                Some(user.id),
                client,
                json!({ "endedSessions": ended }),
            )
            .await;
        Ok(ended)
    }
}
