//! Durable state: users, sessions and refresh tokens. One trait, one module per backend.

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::one_time::TokenKind;
use crate::domain::refresh::TokenHash;
use crate::domain::user::{Role, User};
use crate::keys::StoredSigningKey;

pub mod postgres;
pub mod sqlite;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A live account already holds this email.
    #[error("email already registered")]
    EmailTaken,
    /// The backend cannot be reached or has no free connection in time: retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("store error: {0}")]
    Backend(String),
}

pub struct NewUser {
    pub id: Uuid,
    /// Trimmed, case kept; uniqueness is case-insensitive.
    pub email: String,
    pub name: Option<String>,
    pub password_hash: String,
    pub role: Role,
    pub email_verified: bool,
    /// When the account was made; `None` is now. Imports keep the original date.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The verification token and its mail, written in the same transaction as the user, so a
    /// signup is never left without its mail.
    pub verification: Option<(NewOneTimeToken, OutboxEmail)>,
}

/// A user and the hash their password verifies against.
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub refresh_hash: TokenHash,
    pub refresh_ttl_seconds: u64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// What a rotation asks of the store. The child hash is precomputed from the presented token, so
/// the store never sees a token in clear.
pub struct Rotation {
    pub presented: TokenHash,
    pub child: TokenHash,
    pub refresh_ttl_seconds: u64,
    pub grace_seconds: u64,
    /// A session older than this does not rotate any more (expired): the user signs in again.
    pub session_max_lifetime_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOwner {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The presented token was current: it is retired and the child is now current.
    Rotated(SessionOwner),
    /// The presented token was retired within the grace window by the rotation that made the
    /// current token: answer with that same child.
    GraceReplay(SessionOwner),
    /// A retired token outside the grace window: the session has just been revoked.
    Reused {
        session_id: Uuid,
        user_id: Uuid,
    },
    Expired,
    /// Unknown token, revoked session, or a user who may no longer sign in.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSession {
    pub session_id: Uuid,
    pub user_id: Uuid,
}

/// A session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: chrono::DateTime<chrono::Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// One page of the admin user list.
#[derive(Debug, Clone, Default)]
pub struct UserPage {
    /// The last (created_at, id) of the previous page.
    pub after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    pub limit: u32,
    pub query: Option<String>,
}

impl UserPage {
    /// The `LIKE` pattern for the query: lowercased, `%`, `_` and `\` escaped, wrapped in `%`.
    pub fn like_pattern(&self) -> Option<String> {
        self.query.as_ref().map(|q| {
            let escaped = q
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        })
    }
}

/// An emailed one-time token to create (its hash only).
#[derive(Debug, Clone)]
pub struct NewOneTimeToken {
    pub hash: TokenHash,
    pub kind: TokenKind,
    pub user_id: Option<Uuid>,
    pub email: String,
    /// JSON object text.
    pub metadata: String,
    pub ttl_seconds: u64,
    /// A follow-up token (the `one_time_token` cookie) rather than an emailed one.
    pub follow_up: bool,
}

/// Which one-time tokens a consumption accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// Only tokens that were emailed: what `POST /auth/tokens/validate` exchanges, so a follow-up
    /// token cannot be exchanged for a fresh one again and again.
    Emailed,
    /// Emailed tokens and follow-up tokens alike: what the next step (verify, reset, signup)
    /// takes.
    Any,
}

/// A consumed one-time token: what it was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedToken {
    pub kind: TokenKind,
    pub user_id: Option<Uuid>,
    pub email: String,
    pub metadata: String,
}

/// A mail for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEmail {
    pub id: Uuid,
    /// `<uuid@host>`, stable across retries.
    pub message_id: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
}

/// A mail the mailer has claimed, with the attempts made so far (this one included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEmail {
    pub email: OutboxEmail,
    pub attempts: u32,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent,
    /// Try again after this many seconds.
    Retry {
        after_seconds: u64,
        error: String,
    },
    /// Give up: too many attempts.
    Dead {
        error: String,
    },
}

/// An audit event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub user_id: Option<Uuid>,
    pub kind: &'static str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// JSON object text.
    pub details: String,
}

/// A recorded audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub kind: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// Only this user's events.
    pub user_id: Option<Uuid>,
    /// The last (created_at, id) of the previous page.
    pub before: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    pub limit: u32,
}

/// What the janitor clears out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeTarget {
    /// Refresh tokens expired longer ago than the retention.
    ExpiredRefreshTokens,
    /// Sessions expired, or revoked longer ago than the retention (their tokens go with them).
    DeadSessions,
    /// One-time tokens expired, or used longer ago than the retention.
    SpentOneTimeTokens,
    /// Outbox rows sent (or dead) longer ago than the retention.
    DeliveredEmails,
    /// Audit events older than the retention.
    OldEvents,
}

impl PurgeTarget {
    pub const ALL: [PurgeTarget; 5] = [
        PurgeTarget::ExpiredRefreshTokens,
        PurgeTarget::DeadSessions,
        PurgeTarget::SpentOneTimeTokens,
        PurgeTarget::DeliveredEmails,
        PurgeTarget::OldEvents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PurgeTarget::ExpiredRefreshTokens => "refresh_tokens",
            PurgeTarget::DeadSessions => "sessions",
            PurgeTarget::SpentOneTimeTokens => "one_time_tokens",
            PurgeTarget::DeliveredEmails => "email_outbox",
            PurgeTarget::OldEvents => "auth_events",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    LogoutAll,
    Reuse,
    /// The user ended one of their sessions from the sessions list.
    RevokedByUser,
    PasswordChanged,
    AccountDeleted,
    AccountLocked,
    RevokedByAdmin,
    PasswordReset,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::LogoutAll => "logout_all",
            RevokeReason::Reuse => "refresh_token_reused",
            RevokeReason::RevokedByUser => "revoked_by_user",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::AccountDeleted => "account_deleted",
            RevokeReason::AccountLocked => "account_locked",
            RevokeReason::RevokedByAdmin => "revoked_by_admin",
            RevokeReason::PasswordReset => "password_reset",
        }
    }
}

/// Which migrations to apply: all of them, or up to a version (tests of upgrades).
pub type MigrationTarget = Option<u32>;

/// Turns a refinery error into one line an operator can act on.
pub(crate) fn migration_error(e: &refinery::Error) -> StoreError {
    let message = match e.kind() {
        refinery::error::Kind::MissingVersion(m) => format!(
            "the database holds migration {m}, which this authd does not know: it was migrated by a newer \
             version; refusing to run against it"
        ),
        refinery::error::Kind::DivergentVersion(applied, ours) => format!(
            "migration {applied} in the database differs from {ours} shipped with this authd; refusing to run"
        ),
        _ => format!("migration failed: {e}"),
    };
    StoreError::Backend(message)
}

/// Every migration in its own transaction; a database that diverges from, or runs ahead of, the
/// migrations shipped here is refused.
pub(crate) fn configured_runner(
    runner: refinery::Runner,
    target: MigrationTarget,
) -> refinery::Runner {
    let runner = runner.set_abort_divergent(true).set_abort_missing(true);
    match target {
        Some(version) => runner.set_target(refinery::Target::Version(version)),
        None => runner,
    }
}

/// The migration whose schema change comes with Unicode-aware canonical emails: when a run
/// applies it, the backend recomputes every account's comparison key once.
const CANONICAL_EMAILS_VERSION: u32 = 5;

pub(crate) fn applies_canonical_emails(report: &refinery::Report) -> bool {
    report
        .applied_migrations()
        .iter()
        .any(|m| m.version() == CANONICAL_EMAILS_VERSION)
}

/// A connection pool's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Mails waiting to be sent (pending, not dead), for metrics.
    async fn outbox_depth(&self) -> Result<i64, StoreError>;

    /// Connections of the pool, for metrics; `None` for a backend without a pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;

    /// The live (not deleted) user holding this email, compared case-insensitively.
    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError>;

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    /// Replaces the hash of the same password (re-hashing to today's parameters).
    async fn rehash_password(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError>;

    /// Sets a new password and, in the same transaction, retires every outstanding reset token of
    /// the user (emailed or follow-up): a link mailed before the change opens nothing after it.
    async fn set_password(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError>;

    /// The user behind an access token, if its session is live (not revoked) and the user may
    /// still sign in (not deleted, not locked). The store decides, so a revocation holds across
    /// restarts and nodes whatever a cache remembers.
    async fn live_session_user(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<User>, StoreError>;

    /// Stores a one-time token and, in the same transaction, the mail that carries it.
    async fn create_one_time_token(
        &self,
        token: &NewOneTimeToken,
        email: Option<&OutboxEmail>,
    ) -> Result<(), StoreError>;

    /// Consumes a live token of one of `kinds` and `origin` exactly once; `None` when unknown,
    /// used, expired or of another kind or origin. Concurrent calls: one wins.
    async fn consume_one_time_token(
        &self,
        hash: TokenHash,
        kinds: &[TokenKind],
        origin: TokenOrigin,
    ) -> Result<Option<ConsumedToken>, StoreError>;

    /// What a live token of one of `kinds` is for, without consuming it.
    async fn peek_one_time_token(
        &self,
        hash: TokenHash,
        kinds: &[TokenKind],
    ) -> Result<Option<ConsumedToken>, StoreError>;

    /// Puts a mail in the outbox on its own.
    async fn enqueue_email(&self, email: &OutboxEmail) -> Result<(), StoreError>;

    /// Claims up to `limit` due mails for `lease_seconds` (another node skips them meanwhile; if
    /// this one dies, they come due again) and counts the attempt.
    async fn claim_due_emails(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> Result<Vec<ClaimedEmail>, StoreError>;

    /// Records how an attempt ended.
    async fn record_delivery(&self, id: Uuid, outcome: &DeliveryOutcome) -> Result<(), StoreError>;

    /// Marks the user's email verified; false when there is no such live user.
    async fn mark_email_verified(&self, user_id: Uuid) -> Result<bool, StoreError>;

    async fn record_event(&self, event: &NewEvent) -> Result<(), StoreError>;

    async fn list_events(&self, page: &EventPage) -> Result<Vec<AuthEvent>, StoreError>;

    /// Deletes at most `limit` rows of `target` (older than `retention_seconds` where it
    /// applies) and answers how many; short statements, so no lock is held for long.
    async fn purge(
        &self,
        target: PurgeTarget,
        retention_seconds: u64,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Every stored signing key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Stores a new signing key (its `created_at` is the store's clock).
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError>;

    /// Creates a session whose first refresh token (generation 0) has the given hash.
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError>;

    /// Rotates a refresh token atomically: concurrent rotations of one token are serialised on the
    /// session, ordered by its generation counter, never by timestamps.
    async fn rotate_refresh_token(&self, rotation: Rotation)
        -> Result<RotationOutcome, StoreError>;

    /// Revokes the session a refresh token belongs to; `None` when the token is unknown.
    async fn revoke_session_by_refresh(
        &self,
        presented: TokenHash,
        reason: RevokeReason,
    ) -> Result<Option<RevokedSession>, StoreError>;

    /// Revokes one session; false when it was already revoked or does not exist.
    async fn revoke_session(
        &self,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> Result<bool, StoreError>;

    /// Revokes every live session of a user but `except` (the caller's own, when it stays) and
    /// returns their ids.
    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: RevokeReason,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Revokes one session if it belongs to `user_id`; false otherwise or if already revoked.
    async fn revoke_session_of(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> Result<bool, StoreError>;

    /// The user's sessions that are neither revoked nor expired, newest first.
    async fn live_sessions(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, StoreError>;

    /// A live user and their password hash, by id.
    async fn user_credentials_by_id(&self, id: Uuid)
        -> Result<Option<UserCredentials>, StoreError>;

    /// Sets the display name; `None` when there is no such live user.
    async fn update_name(&self, id: Uuid, name: Option<String>)
        -> Result<Option<User>, StoreError>;

    /// Sets the role and/or the lock; `None` when there is no such live user.
    async fn update_role_and_lock(
        &self,
        id: Uuid,
        role: Option<Role>,
        locked: Option<bool>,
    ) -> Result<Option<User>, StoreError>;

    /// Whether a deleted account once held this email (compared like logins compare them).
    async fn email_held_by_deleted_user(&self, email: &str) -> Result<bool, StoreError>;

    /// Marks a user deleted (the row stays, the email is free again); false if there was none.
    async fn soft_delete_user(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Live users ordered by (created_at, id), after the cursor, optionally matching `query`
    /// (a case-insensitive substring of the email or the name).
    async fn list_users(&self, page: &UserPage) -> Result<Vec<User>, StoreError>;
}
