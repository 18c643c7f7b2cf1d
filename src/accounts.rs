//! Account management after sign-in: sessions, profile, password change, deletion, and the admin
//! operations on users. Like `auth`, no HTTP and no SQL: messages to the actors, calls to the store.

use std::sync::Arc;

use crate::actors::Tracked;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

use crate::actors::hasher::HasherPool;
use crate::actors::rate_limiter::RateLimiter;
use crate::actors::tokens::{RevokeSessions, SessionScope, TokenActor};
use crate::audit::{Audit, EventKind};
use crate::auth::{clear_failures, reserve_attempt, FlowDeps, PasswordRules};
use crate::domain::claims::{AccessClaims, Caller};
use crate::domain::client::ClientContext;
use crate::domain::messages::MessageKind;
use crate::domain::user::{check_name, Role, User};
use crate::domain::{lockout, password};
use crate::error::AppError;
use crate::outbox::Outbox;
use crate::store::{AuthEvent, EventPage, RevokeReason, SessionInfo, Store, UserPage};
use serde_json::json;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

#[derive(Clone)]
pub struct AccountService {
    store: Arc<dyn Store>,
    hasher: HasherPool,
    tokens: Tracked<TokenActor>,
    limiter: Tracked<RateLimiter>,
    password_rules: Arc<PasswordRules>,
    audit: Audit,
    outbox: Outbox,
}

/// One page of users and where the next begins.
pub struct UserList {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
}

/// What an admin may change on a user.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub locked: Option<bool>,
}

fn encode_cursor(time: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", time.timestamp_micros(), id))
}

fn checked_limit(limit: Option<u32>) -> Result<u32, AppError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(AppError::validation(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    Ok(limit)
}

/// The search text: trimmed, blank meaning none; control characters (a NUL, which PostgreSQL
/// text cannot hold, among them) are refused.
fn checked_query(query: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(query) = query.map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    if query.chars().any(char::is_control) {
        return Err(AppError::validation(
            "q",
            "must not contain control characters",
        ));
    }
    Ok(Some(query.to_string()))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), AppError> {
    let invalid = || AppError::validation("cursor", "is not a cursor this API returned");
    let text = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(text).map_err(|_| invalid())?;
    let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
    // Only times a store can hold: PostgreSQL refuses some that chrono reads (and answered 500).
    let time = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or_else(invalid)?;
    Ok((time, id.parse().map_err(|_| invalid())?))
}

impl AccountService {
    pub fn new(deps: FlowDeps) -> Self {
        AccountService {
            store: deps.store,
            hasher: deps.hasher,
            tokens: deps.tokens,
            limiter: deps.limiter,
            password_rules: deps.password_rules,
            audit: deps.audit,
            outbox: deps.outbox,
        }
    }

    async fn revoke(
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

    /// The caller's live sessions, each marked whether it is the one asking.
    pub async fn sessions(
        &self,
        caller: &AccessClaims,
    ) -> Result<Vec<(SessionInfo, bool)>, AppError> {
        let sessions = self.store.live_sessions(caller.sub).await?;
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
            .revoke(
                caller.sub,
                SessionScope::Only(session_id),
                RevokeReason::RevokedByUser,
            )
            .await?;
        if revoked == 0 {
            return Err(AppError::NotFound);
        }
        self.audit
            .record(
                EventKind::SessionRevoked,
                Some(caller.sub),
                client,
                json!({ "sessionId": session_id }),
            )
            .await;
        Ok(())
    }

    pub async fn update_name(
        &self,
        caller: &AccessClaims,
        name: Option<&str>,
    ) -> Result<User, AppError> {
        let name = check_name(name).map_err(|e| AppError::validation("name", e))?;
        self.store
            .update_name(caller.sub, name)
            .await?
            .ok_or(AppError::TokenInvalid)
    }

    /// Checks the caller's current password before a sensitive change (`action`); a wrong one is
    /// a field error, not a 401, so that a frontend does not take it for an expired session.
    /// A stolen access token must not become a password oracle: the check shares the account's
    /// login allowance (reserved before hashing, 429 when spent) and every failure is audited.
    async fn check_current_password(
        &self,
        caller: &AccessClaims,
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
            .user_credentials_by_id(caller.sub)
            .await?
            .ok_or(AppError::TokenInvalid)?;
        let account_key = lockout::account_key(&account.user.email);
        reserve_attempt(&self.limiter, &account_key).await?;
        let verification = permit
            .verify(&password::normalize(password), Some(account.password_hash))
            .await?;
        if !verification.matches {
            tracing::info!(user_id = %caller.sub, action, "current password check failed");
            self.audit
                .record(
                    EventKind::ReauthenticationFailed,
                    Some(caller.sub),
                    client,
                    json!({ "action": action }),
                )
                .await;
            return Err(AppError::validation(field, "is not the current password"));
        }
        clear_failures(&self.limiter, account_key).await?;
        Ok(account.user)
    }

    /// Changes the password and ends every other session; the one asking stays signed in.
    pub async fn change_password(
        &self,
        caller: &AccessClaims,
        current: &str,
        new: &str,
        client: &ClientContext,
    ) -> Result<usize, AppError> {
        let user = self
            .check_current_password(
                caller,
                "currentPassword",
                current,
                "password_change",
                client,
            )
            .await?;
        let new =
            self.password_rules
                .check_new(new, &user.email, user.name.as_deref(), "newPassword")?;
        let hash = self.hasher.hash(&new).await?;
        self.store.set_password(user.id, &hash).await?;
        let revoked = self
            .revoke(
                user.id,
                SessionScope::AllExcept(caller.sid),
                RevokeReason::PasswordChanged,
            )
            .await?;
        tracing::info!(user_id = %user.id, revoked, "password changed");
        self.outbox
            .send_notice(
                MessageKind::PasswordChanged,
                &user.email,
                user.name.as_deref(),
            )
            .await?;
        self.audit
            .record(
                EventKind::PasswordChanged,
                Some(user.id),
                client,
                json!({ "revokedSessions": revoked }),
            )
            .await;
        Ok(revoked)
    }

    /// Soft-deletes the caller's account after checking the password, and ends every session.
    pub async fn delete_me(
        &self,
        caller: &AccessClaims,
        password: &str,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        let user = self
            .check_current_password(caller, "password", password, "account_deletion", client)
            .await?;
        self.store.soft_delete_user(user.id).await?;
        self.revoke(user.id, SessionScope::All, RevokeReason::AccountDeleted)
            .await?;
        tracing::info!(user_id = %user.id, "account deleted by its owner");
        self.audit
            .record(
                EventKind::AccountDeleted,
                Some(user.id),
                client,
                json!({ "by": "owner" }),
            )
            .await;
        Ok(())
    }

    /// The caller, if they are still an admin who may act: the account as the store holds it
    /// decides, not the token's `role`, so a demoted or locked admin loses the rights at once.
    pub fn require_admin(caller: Caller) -> Result<User, AppError> {
        if caller.user.role == Role::Admin && !caller.user.locked {
            Ok(caller.user)
        } else {
            Err(AppError::Forbidden)
        }
    }

    pub async fn list_users(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
        query: Option<&str>,
    ) -> Result<UserList, AppError> {
        let limit = checked_limit(limit)?;
        let page = UserPage {
            after: cursor
                .filter(|c| !c.is_empty())
                .map(decode_cursor)
                .transpose()?,
            limit: limit + 1,
            query: checked_query(query)?,
        };
        let mut users = self.store.list_users(&page).await?;
        let next_cursor = if users.len() > limit as usize {
            users.truncate(limit as usize);
            users.last().map(|u| encode_cursor(u.created_at, u.id))
        } else {
            None
        };
        Ok(UserList { users, next_cursor })
    }

    /// The audit log, newest first: one user's (`Some`) or everyone's.
    pub async fn events(
        &self,
        user_id: Option<Uuid>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<AuthEvent>, Option<String>), AppError> {
        let limit = checked_limit(limit)?;
        let page = EventPage {
            user_id,
            before: cursor
                .filter(|c| !c.is_empty())
                .map(decode_cursor)
                .transpose()?,
            limit: limit + 1,
        };
        let mut events = self.store.list_events(&page).await?;
        let next_cursor = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|e| encode_cursor(e.created_at, e.id))
        } else {
            None
        };
        Ok((events, next_cursor))
    }

    pub async fn get_user(&self, id: Uuid) -> Result<User, AppError> {
        self.store.user_by_id(id).await?.ok_or(AppError::NotFound)
    }

    fn refuse_self(admin: &User, id: Uuid, what: &str) -> Result<(), AppError> {
        if admin.id == id {
            return Err(AppError::validation(
                "id",
                format!("an admin cannot {what} their own account"),
            ));
        }
        Ok(())
    }

    /// Changes a user's role or lock; locking ends their sessions.
    pub async fn update_user(
        &self,
        admin: &User,
        id: Uuid,
        changes: UserChanges,
        client: &ClientContext,
    ) -> Result<User, AppError> {
        if changes.role.is_some_and(|r| r != Role::Admin) || changes.locked == Some(true) {
            Self::refuse_self(admin, id, "demote or lock")?;
        }
        let user = self
            .store
            .update_role_and_lock(id, changes.role, changes.locked)
            .await?
            .ok_or(AppError::NotFound)?;
        if changes.locked == Some(true) {
            self.revoke(id, SessionScope::All, RevokeReason::AccountLocked)
                .await?;
        }
        tracing::info!(admin_id = %admin.id, user_id = %id, ?changes, "admin updated a user");
        let details = json!({
            "adminId": admin.id,
            "role": changes.role.map(Role::as_str),
            "locked": changes.locked,
        });
        self.audit
            .record(EventKind::AdminUserUpdated, Some(id), client, details)
            .await;
        Ok(user)
    }

    pub async fn delete_user(
        &self,
        admin: &User,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        Self::refuse_self(admin, id, "delete")?;
        if !self.store.soft_delete_user(id).await? {
            return Err(AppError::NotFound);
        }
        self.revoke(id, SessionScope::All, RevokeReason::AccountDeleted)
            .await?;
        tracing::info!(admin_id = %admin.id, user_id = %id, "admin deleted a user");
        self.audit
            .record(
                EventKind::AdminUserDeleted,
                Some(id),
                client,
                json!({ "adminId": admin.id }),
            )
            .await;
        Ok(())
    }

    pub async fn revoke_user_sessions(
        &self,
        admin: &User,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<usize, AppError> {
        self.get_user(id).await?;
        let revoked = self
            .revoke(id, SessionScope::All, RevokeReason::RevokedByAdmin)
            .await?;
        tracing::info!(admin_id = %admin.id, user_id = %id, revoked, "admin revoked sessions");
        self.audit
            .record(
                EventKind::AdminSessionsRevoked,
                Some(id),
                client,
                json!({ "adminId": admin.id, "revokedSessions": revoked }),
            )
            .await;
        Ok(revoked)
    }
}

/// Creates an account from the command line (`authd user create`): the password passes the same
/// policy as a signup; the email counts as verified, since an operator vouches for it.
pub async fn provision_user(
    store: &dyn Store,
    hasher: &HasherPool,
    rules: &PasswordRules,
    email: &str,
    name: Option<&str>,
    role: Role,
    password: &str,
) -> Result<User, AppError> {
    let email = crate::domain::email::EmailAddress::parse(email)
        .map_err(|e| AppError::validation("email", e.message()))?;
    let name = check_name(name).map_err(|e| AppError::validation("name", e))?;
    let password = rules.check_new(password, email.as_str(), name.as_deref(), "password")?;
    let password_hash = hasher.hash(&password).await?;
    Ok(store
        .create_user(crate::store::NewUser {
            id: Uuid::new_v4(),
            email,
            name,
            password_hash,
            role,
            email_verified: true,
            created_at: None,
            verification: None,
        })
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_a_field_error() {
        let user = User {
            id: Uuid::new_v4(),
            email: "a@example.com".into(),
            name: None,
            role: Role::User,
            email_verified: false,
            locked: false,
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            updated_at: Utc::now(),
        };
        assert_eq!(
            decode_cursor(&encode_cursor(user.created_at, user.id)).unwrap(),
            (user.created_at, user.id)
        );
        let far_future = URL_SAFE_NO_PAD.encode(format!("{}.{}", i64::MAX / 2, Uuid::nil()));
        let before_christ =
            URL_SAFE_NO_PAD.encode(format!("{}.{}", -62_200_000_000_000_000i64, Uuid::nil()));
        for junk in ["", "!!", "bm90LWEtY3Vyc29y", &far_future, &before_christ] {
            assert!(
                matches!(decode_cursor(junk), Err(AppError::Validation(_))),
                "{junk}"
            );
        }
    }
}
