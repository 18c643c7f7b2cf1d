//! The audit log: one row per security-relevant event, with the client's address, user agent and
//! the request id. Writing it never fails the request it describes: a failure is logged instead.
//! With webhooks on, each event carries its webhook message, queued in the event's transaction
//! for the endpoints subscribed to its kind; the dispatcher is woken when any was queued.

use std::sync::Arc;

use actix::Addr;
use serde_json::Value;
use uuid::Uuid;

use crate::actors::webhooks::WebhookDispatcher;
use crate::actors::Wake;
use crate::domain::client::ClientContext;
use crate::domain::webhooks::{Message, MessageData};
use crate::store::{NewEvent, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Signup,
    LoginSucceeded,
    LoginFailed,
    /// A wrong current password where one is asked again (password change, account deletion).
    ReauthenticationFailed,
    Logout,
    LogoutAll,
    RefreshReuseDetected,
    PasswordChanged,
    PasswordReset,
    EmailVerified,
    SessionRevoked,
    AccountDeleted,
    InvitationSent,
    AdminUserUpdated,
    AdminUserDeleted,
    AdminSessionsRevoked,
    /// A second factor was confirmed (`details.method`).
    MfaEnabled,
    /// The owner removed their second factors.
    MfaDisabled,
    /// An admin removed a user's second factors.
    AdminMfaReset,
    /// A wrong second-factor code (`details.method`, `details.step`: login, enrolment, step-up).
    MfaFailed,
    /// A recovery code was used (`details.left`).
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    /// A session proved itself again for a sensitive action.
    Reauthenticated,
    /// An identity at another provider was linked to the account (`details.provider`).
    IdentityLinked,
    /// The owner unlinked an identity (`details.provider`).
    IdentityUnlinked,
    /// A sign-in through a provider failed (`details.provider`, `details.reason`).
    FederatedLoginFailed,
    /// The owner asked to change the account's address (the new one must confirm).
    EmailChangeRequested,
    /// The new address confirmed: the account's address changed.
    EmailChanged,
    /// An admin registered a webhook endpoint (`details.endpointId`, `details.url`).
    AdminWebhookCreated,
    /// An admin deleted a webhook endpoint (`details.endpointId`, `details.url`).
    AdminWebhookDeleted,
}

impl EventKind {
    /// Every kind: what a webhook endpoint may subscribe to.
    pub const ALL: [EventKind; 30] = [
        EventKind::Signup,
        EventKind::LoginSucceeded,
        EventKind::LoginFailed,
        EventKind::ReauthenticationFailed,
        EventKind::Logout,
        EventKind::LogoutAll,
        EventKind::RefreshReuseDetected,
        EventKind::PasswordChanged,
        EventKind::PasswordReset,
        EventKind::EmailVerified,
        EventKind::SessionRevoked,
        EventKind::AccountDeleted,
        EventKind::InvitationSent,
        EventKind::AdminUserUpdated,
        EventKind::AdminUserDeleted,
        EventKind::AdminSessionsRevoked,
        EventKind::MfaEnabled,
        EventKind::MfaDisabled,
        EventKind::AdminMfaReset,
        EventKind::MfaFailed,
        EventKind::RecoveryCodeUsed,
        EventKind::RecoveryCodesRegenerated,
        EventKind::Reauthenticated,
        EventKind::IdentityLinked,
        EventKind::IdentityUnlinked,
        EventKind::FederatedLoginFailed,
        EventKind::EmailChangeRequested,
        EventKind::EmailChanged,
        EventKind::AdminWebhookCreated,
        EventKind::AdminWebhookDeleted,
    ];

    /// The kind of this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Signup => "signup",
            EventKind::LoginSucceeded => "login_succeeded",
            EventKind::LoginFailed => "login_failed",
            EventKind::ReauthenticationFailed => "reauthentication_failed",
            EventKind::Logout => "logout",
            EventKind::LogoutAll => "logout_all",
            EventKind::RefreshReuseDetected => "refresh_reuse_detected",
            EventKind::PasswordChanged => "password_changed",
            EventKind::PasswordReset => "password_reset",
            EventKind::EmailVerified => "email_verified",
            EventKind::SessionRevoked => "session_revoked",
            EventKind::AccountDeleted => "account_deleted",
            EventKind::InvitationSent => "invitation_sent",
            EventKind::AdminUserUpdated => "admin_user_updated",
            EventKind::AdminUserDeleted => "admin_user_deleted",
            EventKind::AdminSessionsRevoked => "admin_sessions_revoked",
            EventKind::MfaEnabled => "mfa_enabled",
            EventKind::MfaDisabled => "mfa_disabled",
            EventKind::AdminMfaReset => "admin_mfa_reset",
            EventKind::MfaFailed => "mfa_failed",
            EventKind::RecoveryCodeUsed => "recovery_code_used",
            EventKind::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            EventKind::Reauthenticated => "reauthenticated",
            EventKind::IdentityLinked => "identity_linked",
            EventKind::IdentityUnlinked => "identity_unlinked",
            EventKind::FederatedLoginFailed => "federated_login_failed",
            EventKind::EmailChangeRequested => "email_change_requested",
            EventKind::EmailChanged => "email_changed",
            EventKind::AdminWebhookCreated => "admin_webhook_created",
            EventKind::AdminWebhookDeleted => "admin_webhook_deleted",
        }
    }
}

#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn Store>,
    /// The dispatcher, when webhooks are on: events then carry their message and wake it.
    webhooks: Option<Addr<WebhookDispatcher>>,
}

impl Audit {
    pub fn new(store: Arc<dyn Store>, webhooks: Option<Addr<WebhookDispatcher>>) -> Self {
        Audit { store, webhooks }
    }

    /// Appends one event with the request's context (and, with webhooks on, queues its message
    /// for the subscribed endpoints in the same transaction). A failure to write is logged,
    /// never returned: the audit log must not turn a done action into an error.
    pub async fn record(
        &self,
        kind: EventKind,
        user_id: Option<Uuid>,
        client: &ClientContext,
        details: Value,
    ) {
        self.write(kind, user_id, None, client, details).await
    }

    /// Appends an admin's action about `user_id` (when it is about an account): the admin is the
    /// event's `actor_id`, which `GET /admin/events?actorId=` finds.
    pub async fn record_admin_action(
        &self,
        kind: EventKind,
        user_id: Option<Uuid>,
        admin_id: Uuid,
        client: &ClientContext,
        details: Value,
    ) {
        self.write(kind, user_id, Some(admin_id), client, details)
            .await
    }

    async fn write(
        &self,
        kind: EventKind,
        user_id: Option<Uuid>,
        actor_id: Option<Uuid>,
        client: &ClientContext,
        details: Value,
    ) {
        let id = Uuid::new_v4();
        let ip = client.ip.map(|ip| ip.to_string());
        let webhook_message = self.webhooks.is_some().then(|| {
            Message {
                id,
                kind: kind.as_str(),
                timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                data: MessageData {
                    user_id,
                    actor_id,
                    ip: ip.as_deref(),
                    user_agent: client.user_agent.as_deref(),
                    request_id: client.request_id.as_deref(),
                    details: &details,
                },
            }
            .to_json()
        });
        let event = NewEvent {
            id,
            user_id,
            actor_id,
            kind: kind.as_str(),
            ip,
            user_agent: client.user_agent.clone(),
            request_id: client.request_id.clone(),
            details: details.to_string(),
            webhook_message,
        };
        match self.store.record_event(&event).await {
            Ok(0) => {}
            Ok(_) => {
                if let Some(dispatcher) = &self.webhooks {
                    dispatcher.do_send(Wake);
                }
            }
            Err(e) => {
                tracing::error!(kind = kind.as_str(), error = %e, "audit event not recorded")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind, as one exhaustive match: a new kind stops this file from compiling until it
    /// is named here, next to the reminder to list it in [`EventKind::ALL`] too (which must hold
    /// each kind once, as the test below checks).
    fn named(kind: EventKind) -> EventKind {
        match kind {
            EventKind::Signup
            | EventKind::LoginSucceeded
            | EventKind::LoginFailed
            | EventKind::ReauthenticationFailed
            | EventKind::Logout
            | EventKind::LogoutAll
            | EventKind::RefreshReuseDetected
            | EventKind::PasswordChanged
            | EventKind::PasswordReset
            | EventKind::EmailVerified
            | EventKind::SessionRevoked
            | EventKind::AccountDeleted
            | EventKind::InvitationSent
            | EventKind::AdminUserUpdated
            | EventKind::AdminUserDeleted
            | EventKind::AdminSessionsRevoked
            | EventKind::MfaEnabled
            | EventKind::MfaDisabled
            | EventKind::AdminMfaReset
            | EventKind::MfaFailed
            | EventKind::RecoveryCodeUsed
            | EventKind::RecoveryCodesRegenerated
            | EventKind::Reauthenticated
            | EventKind::IdentityLinked
            | EventKind::IdentityUnlinked
            | EventKind::FederatedLoginFailed
            | EventKind::EmailChangeRequested
            | EventKind::EmailChanged
            | EventKind::AdminWebhookCreated
            | EventKind::AdminWebhookDeleted => kind,
        }
    }

    #[test]
    fn every_kind_is_listed_once_and_parses_back() {
        for kind in EventKind::ALL {
            assert_eq!(named(kind), kind);
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        let names: std::collections::BTreeSet<_> =
            EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        assert_eq!(EventKind::parse("*"), None);
    }
}
