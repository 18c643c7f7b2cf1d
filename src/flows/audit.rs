//! The audit log: one row per security-relevant event, with the client's address, user agent and
//! the request id. Writing it never fails the request it describes: a failure is logged instead.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::domain::client::ClientContext;
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
}

impl EventKind {
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
        }
    }
}

#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn Store>,
}

impl Audit {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Audit { store }
    }

    /// Appends one event with the request's context. A failure to write is logged, never
    /// returned: the audit log must not turn a done action into an error.
    pub async fn record(
        &self,
        kind: EventKind,
        user_id: Option<Uuid>,
        client: &ClientContext,
        details: Value,
    ) {
        let event = NewEvent {
            id: Uuid::new_v4(),
            user_id,
            kind: kind.as_str(),
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
            request_id: client.request_id.clone(),
            details: details.to_string(),
            webhook_message: None,
        };
        if let Err(e) = self.store.record_event(&event).await {
            tracing::error!(kind = kind.as_str(), error = %e, "audit event not recorded");
        }
    }
}
