//! Account management after sign-in: sessions, profile, password change, deletion, and the admin
//! operations on users. Like `auth`, no HTTP and no SQL: messages to the actors, calls to the store.

use uuid::Uuid;

use crate::actors::tokens::SessionScope;
use crate::domain::claims::AccessClaims;
use crate::domain::client::ClientContext;
use crate::domain::email::CanonicalEmail;
use crate::domain::messages::MessageKind;
use crate::domain::one_time::{EmailChangeOrigin, TokenKind};
use crate::domain::password;
use crate::domain::user::{check_name, User};
use crate::error::AppError;
use crate::flows::audit::EventKind;
use crate::flows::deps::{FlowDeps, ACCOUNT_EXISTS_MAIL, CHANGE_REQUESTED_MAIL};
use crate::flows::pages::event_page;
use crate::store::{AuthEvent, RevokeReason, SessionInfo, UserUpdate};
use serde_json::json;

#[derive(Clone)]
pub struct AccountService {
    deps: FlowDeps,
}

impl AccountService {
    pub fn new(deps: FlowDeps) -> Self {
        AccountService { deps }
    }

    /// Asks to change the caller's address to `new_email`: a confirmation link goes to the new
    /// address and a notice to the old one; nothing changes until the link is used, and only
    /// while the asking session lives. Needs the current password, or (without one) a recent
    /// sign-in; on an account with a second factor, a recent sign-in at level 2 either way (the
    /// password is one factor, and the address is how the account is recovered). A taken address
    /// gets the same answer; its owner is told instead (an address a deleted account held, when
    /// it may not be reused, gets it too, and nobody is told).
    pub async fn request_email_change(
        &self,
        caller: &AccessClaims,
        new_email: &str,
        password: Option<&str>,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        let new_email = crate::domain::email::EmailAddress::parse_new(new_email)
            .map_err(|e| AppError::validation("newEmail", e.message()))?;
        let user = match password.filter(|p| !p.is_empty()) {
            Some(password) => {
                if self.deps.store.mfa_status(caller.sub).await?.enabled() {
                    self.deps.require_step_up(caller).await?;
                }
                let action = "email_change";
                let check = self
                    .deps
                    .check_password(caller.sub, "password", password, action, client);
                check.await?
            }
            None => {
                self.deps.require_step_up(caller).await?;
                self.deps.live_user(caller.sub).await?
            }
        };
        if CanonicalEmail::of(&user.email) == *new_email.canonical() {
            return Err(AppError::validation(
                "newEmail",
                "is the account's address already",
            ));
        }
        let (deps, outbox) = (&self.deps, &self.deps.outbox);
        // The newest request is the one the user means: a link sent for an earlier (mistyped)
        // address opens nothing now, whatever this one sends.
        deps.store
            .retire_one_time_tokens(user.id, TokenKind::EmailChange)
            .await?;
        let name = user.name_for_mail();
        // Every mail below goes to an address under the caps of `auth.link_mails_per_address`:
        // a signed-in account must not be a way to flood someone's mailbox.
        let new_canonical = new_email.canonical();
        match deps.store.user_by_email(new_canonical).await? {
            Some(holder) => {
                if deps
                    .mail_allowed(ACCOUNT_EXISTS_MAIL, new_canonical)
                    .await?
                {
                    let holder_name = holder.user.name_for_mail();
                    outbox
                        .send_notice(MessageKind::AccountExists, &holder.user.email, holder_name)
                        .await?;
                }
            }
            None if deps.address_retired(new_canonical).await? => {}
            None if !deps
                .mail_allowed(TokenKind::EmailChange.as_str(), new_canonical)
                .await? => {}
            None => {
                let origin = EmailChangeOrigin {
                    session_id: caller.sid,
                };
                let prepared = outbox.prepare_token(
                    TokenKind::EmailChange,
                    Some(user.id),
                    new_email.as_str(),
                    // The new address is not proven: it is greeted without a name.
                    None,
                    &json!(origin),
                );
                outbox.send_token(prepared).await?;
            }
        }
        let current = CanonicalEmail::of(&user.email);
        if deps.mail_allowed(CHANGE_REQUESTED_MAIL, &current).await? {
            outbox
                .send_notice_about(
                    MessageKind::EmailChangeRequested,
                    &user.email,
                    name,
                    new_email.as_str(),
                )
                .await?;
        }
        crate::metrics::email_flow("email_change", "requested");
        self.deps
            .audit
            .record(
                EventKind::EmailChangeRequested,
                Some(user.id),
                client,
                json!({}),
            )
            .await;
        Ok(())
    }

    /// The caller's live sessions, each marked whether it is the one asking.
    pub async fn sessions(
        &self,
        caller: &AccessClaims,
    ) -> Result<Vec<(SessionInfo, bool)>, AppError> {
        let sessions = self.deps.store.live_sessions(caller.sub).await?;
        Ok(sessions
            .into_iter()
            .map(|s| {
                let current = s.id == caller.sid;
                (s, current)
            })
            .collect())
    }

    /// Ends one of the caller's own sessions; anyone else's is "not found".
    pub async fn revoke_session(
        &self,
        caller: &AccessClaims,
        session_id: Uuid,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        let revoked = self
            .deps
            .revoke_sessions(
                caller.sub,
                SessionScope::Only(session_id),
                RevokeReason::RevokedByUser,
            )
            .await?;
        if revoked == 0 {
            return Err(AppError::NotFound);
        }
        let details = json!({ "sessionId": session_id });
        self.deps
            .audit
            .record(EventKind::SessionRevoked, Some(caller.sub), client, details)
            .await;
        Ok(())
    }

    /// Sets or clears the caller's display name (checked like signup's).
    pub async fn update_name(
        &self,
        caller: &AccessClaims,
        name: Option<&str>,
    ) -> Result<User, AppError> {
        let name = check_name(name).map_err(|e| AppError::validation("name", e))?;
        self.deps
            .store
            .update_user(
                caller.sub,
                UserUpdate {
                    name: Some(name),
                    ..UserUpdate::default()
                },
            )
            .await?
            .ok_or(AppError::TokenInvalid)
    }

    /// Changes the password and ends every other session; the one asking stays signed in.
    pub async fn change_password(
        &self,
        caller: &AccessClaims,
        current: &str,
        new: &str,
        client: &ClientContext,
    ) -> Result<usize, AppError> {
        self.deps.require_step_up(caller).await?;
        let user = self
            .deps
            .check_password(
                caller.sub,
                "currentPassword",
                current,
                "password_change",
                client,
            )
            .await?;
        // Checked once the current password is proved, so it tells nobody else anything.
        if password::normalize(new) == password::normalize(current) {
            return Err(AppError::validation(
                "newPassword",
                "must differ from the current password",
            ));
        }
        let new = self
            .deps
            .password_rules
            .check_replacement(&user, new)
            .await?;
        let hash = self.deps.hasher.hash(&new).await?;
        self.deps
            .replace_password(
                &user,
                &hash,
                SessionScope::AllExcept(caller.sid),
                RevokeReason::PasswordChanged,
                EventKind::PasswordChanged,
                client,
            )
            .await
    }

    /// Soft-deletes the caller's account after checking the password, and ends every session.
    pub async fn delete_me(
        &self,
        caller: &AccessClaims,
        password: &str,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        self.deps.require_step_up(caller).await?;
        let account = self
            .deps
            .store
            .user_credentials_by_id(caller.sub)
            .await?
            .ok_or(AppError::TokenInvalid)?;
        // An account made through a provider has no password: the recent sign-in that step-up
        // demands is its proof.
        let user = match crate::domain::password::usable_hash(account.password_hash) {
            Some(_) => {
                let action = "account_deletion";
                let check = self
                    .deps
                    .check_password(caller.sub, "password", password, action, client);
                check.await?
            }
            None => account.user,
        };
        self.deps.store.soft_delete_user(user.id).await?;
        self.deps
            .revoke_sessions(user.id, SessionScope::All, RevokeReason::AccountDeleted)
            .await?;
        tracing::info!(user_id = %user.id, "account deleted by its owner");
        let details = json!({ "by": "owner" });
        self.deps
            .audit
            .record(EventKind::AccountDeleted, Some(user.id), client, details)
            .await;
        Ok(())
    }

    /// The caller's own audit events, newest first. Of an admin's action on the account the
    /// kind says an admin acted; which admin, and from which address and browser, is for admins
    /// to see (staff addresses and machines are not the user's business).
    pub async fn events(
        &self,
        caller: &AccessClaims,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<AuthEvent>, Option<String>), AppError> {
        let store = self.deps.store.as_ref();
        let (mut events, next) = event_page(store, Some(caller.sub), None, cursor, limit).await?;
        for event in events.iter_mut().filter(|e| e.actor_id.is_some()) {
            (event.actor_id, event.ip, event.user_agent) = (None, None, None);
        }
        Ok((events, next))
    }
}
