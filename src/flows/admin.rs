//! What an admin does: list, inspect, change, lock and delete users, end their sessions, invite
//! (as the store holds the admin's account, not as their token claims); and `authd user create`.

use serde_json::json;
use uuid::Uuid;

use crate::actors::hasher::HasherPool;
use crate::actors::tokens::SessionScope;
use crate::domain::claims::{AccessClaims, Caller};
use crate::domain::client::ClientContext;
use crate::domain::email::EmailAddress;
use crate::domain::one_time::TokenKind;
use crate::domain::user::{check_name, Role, User};
use crate::error::AppError;
use crate::flows::audit::EventKind;
use crate::flows::deps::{address_retired, FlowDeps, PasswordRules, RETIRED_ADDRESS};
use crate::flows::pages::{checked_limit, checked_query, decode_cursor, encode_cursor, event_page};
use crate::store::{AuthEvent, RevokeReason, Store, UserPage, UserUpdate};

#[derive(Clone)]
pub struct AdminService {
    deps: FlowDeps,
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

impl AdminService {
    pub fn new(deps: FlowDeps) -> Self {
        AdminService { deps }
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

    /// With `auth.admin_reauthentication`, an admin action that changes something needs a
    /// recent sign-in, like the owner's sensitive actions.
    pub async fn require_step_up(&self, caller: &AccessClaims) -> Result<(), AppError> {
        if self.deps.step_up.admin_actions {
            self.deps.require_step_up(caller).await?;
        }
        Ok(())
    }

    /// Invites `email` with `role`: a one-time token (7 days by default) mailed to the address.
    pub async fn invite(
        &self,
        client: &ClientContext,
        admin_id: Uuid,
        raw_email: &str,
        role: Role,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, AppError> {
        let address = EmailAddress::parse_new(raw_email)
            .map_err(|e| AppError::validation("email", e.message()))?;
        let holder = self.deps.store.user_by_email(address.canonical()).await?;
        if holder.is_some() || self.deps.address_retired(address.canonical()).await? {
            return Err(AppError::EmailTaken);
        }
        let mut metadata = metadata;
        metadata.insert("role".into(), role.as_str().into());
        metadata.insert("invitedBy".into(), admin_id.to_string().into());
        let metadata = serde_json::Value::Object(metadata);
        let outbox = &self.deps.outbox;
        let (mut token, mail) = outbox.prepare_token(
            TokenKind::Invitation,
            None,
            address.as_str(),
            None,
            &metadata,
        );
        // Stored by its canonical form, so that inviting `Dave@…` after `dave@…` withdraws the
        // first invitation (the store retires the address's outstanding ones).
        token.email = address.canonical().as_str().to_string();
        outbox.send_token((token, mail)).await?;
        tracing::info!(%admin_id, role = role.as_str(), "invitation sent");
        let details = json!({ "email": address.as_str(), "role": role.as_str() });
        self.deps
            .audit
            .record_admin_action(EventKind::InvitationSent, None, admin_id, client, details)
            .await;
        Ok(address.into_string())
    }

    /// A page of live users, oldest first, optionally matching `q` in email or name.
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
        let mut users = self.deps.store.list_users(&page).await?;
        let next_cursor = if users.len() > limit as usize {
            users.truncate(limit as usize);
            users.last().map(|u| encode_cursor(u.created_at, u.id))
        } else {
            None
        };
        Ok(UserList { users, next_cursor })
    }

    /// One live user, or `not_found`.
    pub async fn get_user(&self, id: Uuid) -> Result<User, AppError> {
        self.deps.live_user(id).await
    }

    /// Changes a user's role or lock; locking ends their sessions.
    pub async fn update_user(
        &self,
        admin: &User,
        id: Uuid,
        changes: UserChanges,
        client: &ClientContext,
    ) -> Result<User, AppError> {
        // Only what differs from the account as it is counts: nothing to change is nothing to
        // audit or announce either.
        let current = self.get_user(id).await?;
        let changes = UserChanges {
            role: changes.role.filter(|role| *role != current.role),
            locked: changes.locked.filter(|locked| *locked != current.locked),
        };
        if changes.role.is_none() && changes.locked.is_none() {
            return Ok(current);
        }
        if changes.role.is_some_and(|r| r != Role::Admin) || changes.locked == Some(true) {
            refuse_self(admin, id, "demote or lock")?;
        }
        let user = self
            .deps
            .store
            .update_user(
                id,
                UserUpdate {
                    name: None,
                    role: changes.role,
                    locked: changes.locked,
                },
            )
            .await?
            .ok_or(AppError::NotFound)?;
        if changes.locked == Some(true) {
            self.deps
                .revoke_sessions(id, SessionScope::All, RevokeReason::AccountLocked)
                .await?;
        }
        tracing::info!(admin_id = %admin.id, user_id = %id, ?changes, "admin updated a user");
        let details = json!({
            "role": changes.role.map(Role::as_str),
            "locked": changes.locked,
        });
        self.deps
            .audit
            .record_admin_action(
                EventKind::AdminUserUpdated,
                Some(id),
                admin.id,
                client,
                details,
            )
            .await;
        Ok(user)
    }

    /// Deletes a user (never the admin themself) and revokes their sessions.
    pub async fn delete_user(
        &self,
        admin: &User,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        refuse_self(admin, id, "delete")?;
        if !self.deps.store.soft_delete_user(id).await? {
            return Err(AppError::NotFound);
        }
        self.deps
            .revoke_sessions(id, SessionScope::All, RevokeReason::AccountDeleted)
            .await?;
        tracing::info!(admin_id = %admin.id, user_id = %id, "admin deleted a user");
        let (kind, details) = (EventKind::AdminUserDeleted, json!({}));
        self.deps
            .audit
            .record_admin_action(kind, Some(id), admin.id, client, details)
            .await;
        Ok(())
    }

    /// Signs a user out everywhere; answers how many sessions were live.
    pub async fn revoke_user_sessions(
        &self,
        admin: &User,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<usize, AppError> {
        self.get_user(id).await?;
        let revoked = self
            .deps
            .revoke_sessions(id, SessionScope::All, RevokeReason::RevokedByAdmin)
            .await?;
        tracing::info!(admin_id = %admin.id, user_id = %id, revoked, "admin revoked sessions");
        let (kind, details) = (
            EventKind::AdminSessionsRevoked,
            json!({ "revokedSessions": revoked }),
        );
        self.deps
            .audit
            .record_admin_action(kind, Some(id), admin.id, client, details)
            .await;
        Ok(revoked)
    }

    /// The audit log, newest first: everyone's, or those about one user (`user_id`), or those
    /// one admin caused (`actor_id`), or both.
    pub async fn events(
        &self,
        user_id: Option<Uuid>,
        actor_id: Option<Uuid>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<AuthEvent>, Option<String>), AppError> {
        event_page(self.deps.store.as_ref(), user_id, actor_id, cursor, limit).await
    }
}

/// An admin acts on others only where the same act on their own account has its own path with
/// its own checks (`DELETE /me` needs the password, `/me/mfa` a recent sign-in) or would lock
/// them out.
pub(crate) fn refuse_self(admin: &User, id: Uuid, what: &str) -> Result<(), AppError> {
    if admin.id == id {
        return Err(AppError::validation(
            "id",
            format!("an admin cannot {what} their own account"),
        ));
    }
    Ok(())
}

/// An account the command line asks for (`authd user create`).
pub struct ProvisionRequest<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub role: Role,
    pub password: &'a str,
    /// `auth.allow_email_reuse_after_delete`.
    pub allow_email_reuse_after_delete: bool,
}

/// Creates an account from the command line (`authd user create`): the password passes the same
/// policy as a signup, and a deleted account's address stays closed as it does to a signup; the
/// email counts as verified, since an operator vouches for it.
pub async fn provision_user(
    store: &dyn Store,
    hasher: &HasherPool,
    rules: &PasswordRules,
    request: ProvisionRequest<'_>,
) -> Result<User, AppError> {
    let email = crate::domain::email::EmailAddress::parse_new(request.email)
        .map_err(|e| AppError::validation("email", e.message()))?;
    let reuse = request.allow_email_reuse_after_delete;
    if address_retired(store, reuse, email.canonical()).await? {
        return Err(AppError::validation("email", RETIRED_ADDRESS));
    }
    let name = check_name(request.name).map_err(|e| AppError::validation("name", e))?;
    let password = rules
        .check_new(
            request.password,
            email.as_str(),
            name.as_deref(),
            "password",
        )
        .await?;
    let password_hash = hasher.hash(&password).await?;
    let user = crate::store::NewUser {
        // An operator vouches for the address.
        email_verified: true,
        ..crate::store::NewUser::new(email, name, password_hash, request.role)
    };
    Ok(store.create_user(user).await?)
}
