//! Durable state. One small trait per concern (users, sessions, one-time tokens, outbox, events,
//! signing keys, upkeep), one module per backend with one file per trait. Backends only read and
//! write: the decisions (rotation and reuse, one-time token use) are in `crate::domain`, fed with
//! what the backend read inside its transaction.

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::email::CanonicalEmail;
use crate::domain::one_time::{OneTimeAction, OneTimeUse};
use crate::domain::opaque_token::TokenHash;
use crate::domain::user::User;

mod migrations;
pub mod postgres;
mod records;
pub mod sqlite;

pub use migrations::MigrationTarget;
pub(crate) use migrations::{applies_canonical_emails, configured_runner, migration_error};
pub use records::*;

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

/// Everything authd keeps, in one object: what the services hold (`Arc<dyn Store>`). Each
/// backend says `impl Store for … {}` once it implements every part.
pub trait Store:
    UserStore
    + SessionStore
    + OneTimeTokenStore
    + OutboxStore
    + EventStore
    + SigningKeyStore
    + MfaStore
    + PasskeyStore
    + MaintenanceStore
{
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;

    /// The live (not deleted) user holding this email, compared by its canonical form.
    async fn user_by_email(
        &self,
        email: &CanonicalEmail,
    ) -> Result<Option<UserCredentials>, StoreError>;

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    /// A live user and their password hash, by id.
    async fn user_credentials_by_id(&self, id: Uuid)
        -> Result<Option<UserCredentials>, StoreError>;

    /// Replaces the hash of the same password (re-hashing to today's parameters).
    async fn rehash_password(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError>;

    /// Sets a new password and, in the same transaction, retires every outstanding reset token of
    /// the user (emailed or follow-up): a link mailed before the change opens nothing after it.
    async fn set_password(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError>;

    /// Marks the user's email verified; false when there is no such live user.
    async fn mark_email_verified(&self, user_id: Uuid) -> Result<bool, StoreError>;

    /// Applies `update` (name, role, lock); `None` when there is no such live user.
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> Result<Option<User>, StoreError>;

    /// Whether a deleted account once held this email.
    async fn email_held_by_deleted_user(&self, email: &CanonicalEmail) -> Result<bool, StoreError>;

    /// Marks a user deleted (the row stays, the email is free again); false if there was none.
    async fn soft_delete_user(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Live users ordered by (created_at, id), after the cursor, optionally matching `query`
    /// (a case-insensitive substring of the email or the name).
    async fn list_users(&self, page: &UserPage) -> Result<Vec<User>, StoreError>;
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Creates a session whose first refresh token (generation 0) has the given hash.
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError>;

    /// The user behind an access token, if its session is live (not revoked) and the user may
    /// still sign in (not deleted, not locked). The store decides, so a revocation holds across
    /// restarts and nodes whatever a cache remembers.
    async fn live_session_user(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<User>, StoreError>;

    /// Rotates a refresh token atomically: concurrent rotations of one token are serialised on the
    /// session; `domain::rotation::decide` says what the presented token means.
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

    /// Records that a live session of its user proved itself again, now, with its methods;
    /// `None` when the session is revoked or its user may no longer sign in.
    async fn reauthenticate_session(
        &self,
        proof: &SessionProof,
    ) -> Result<Option<SessionOwner>, StoreError>;
}

#[async_trait]
pub trait OneTimeTokenStore: Send + Sync + 'static {
    /// Stores a one-time token and, in the same transaction, the mail that carries it.
    async fn create_one_time_token(
        &self,
        token: &NewOneTimeToken,
        email: Option<&OutboxEmail>,
    ) -> Result<(), StoreError>;

    /// The token if `domain::one_time::usable` accepts it for `wanted`, else `None`. With
    /// [`OneTimeAction::Consume`] it is used up exactly once (concurrent uses: one wins).
    async fn one_time_token(
        &self,
        hash: TokenHash,
        wanted: &OneTimeUse<'_>,
        action: OneTimeAction,
    ) -> Result<Option<ConsumedToken>, StoreError>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
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

    /// Mails waiting to be sent (pending, not dead), for metrics.
    async fn outbox_depth(&self) -> Result<i64, StoreError>;
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    async fn record_event(&self, event: &NewEvent) -> Result<(), StoreError>;

    async fn list_events(&self, page: &EventPage) -> Result<Vec<AuthEvent>, StoreError>;
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync + 'static {
    /// Every stored signing key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Stores a new signing key (its `created_at` is the store's clock).
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError>;
}

/// Second factors, recovery codes and the pending second step of logins. The rules (which step a
/// code is, how many attempts a login gets) are in `crate::domain`; every "at most once" here is
/// one conditional statement, so concurrent requests cannot both pass.
#[async_trait]
pub trait MfaStore: Send + Sync + 'static {
    /// Stores a pending TOTP enrolment, replacing the user's earlier pending one.
    async fn create_totp_factor(&self, factor: &TotpFactor) -> Result<(), StoreError>;

    /// The user's TOTP factor in `state`, if any.
    async fn totp_factor(
        &self,
        user_id: Uuid,
        state: FactorState,
    ) -> Result<Option<TotpFactor>, StoreError>;

    /// Accepts time step `step` for the factor if it is later than every step accepted before:
    /// false means the code was used already (or an earlier one of a later step was).
    async fn use_totp_step(&self, factor_id: Uuid, step: i64) -> Result<bool, StoreError>;

    /// Confirms a pending factor with the step of its first code and, in the same transaction,
    /// replaces the user's recovery codes; false when it is no longer pending.
    async fn confirm_totp_factor(
        &self,
        confirmation: &TotpConfirmation,
    ) -> Result<bool, StoreError>;

    /// Replaces every recovery code of the user (the old ones stop working).
    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        codes: &[TokenHash],
    ) -> Result<(), StoreError>;

    /// Uses up one recovery code; `None` if it is unknown or used, else how many are left.
    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code: TokenHash,
    ) -> Result<Option<u32>, StoreError>;

    async fn mfa_status(&self, user_id: Uuid) -> Result<MfaStatus, StoreError>;

    /// Removes the chosen factors and, when no factor is left, the recovery codes; false when
    /// there was nothing to remove.
    async fn remove_factors(&self, user_id: Uuid, which: FactorChoice) -> Result<bool, StoreError>;

    async fn create_mfa_challenge(&self, challenge: &NewMfaChallenge) -> Result<(), StoreError>;

    /// Counts one attempt at a live (unexpired, unused) challenge that has had fewer than
    /// `max_attempts`; `None` otherwise.
    async fn attempt_mfa_challenge(
        &self,
        hash: TokenHash,
        max_attempts: u32,
    ) -> Result<Option<MfaChallenge>, StoreError>;

    /// Uses the challenge up; false when another request did first.
    async fn consume_mfa_challenge(&self, hash: TokenHash) -> Result<bool, StoreError>;
}

/// Passkeys and the state of WebAuthn ceremonies (single-use: taking one deletes it).
#[async_trait]
pub trait PasskeyStore: Send + Sync + 'static {
    async fn create_ceremony(&self, ceremony: &NewCeremony) -> Result<(), StoreError>;

    /// Deletes the ceremony and answers it if it was of `kind` and unexpired: a state is used
    /// once, whatever the outcome.
    async fn take_ceremony(
        &self,
        hash: TokenHash,
        kind: CeremonyKind,
    ) -> Result<Option<Ceremony>, StoreError>;

    /// Stores a passkey; false when its credential id is registered already (to anyone).
    async fn add_passkey(&self, passkey: &StoredPasskey) -> Result<bool, StoreError>;

    /// The user's passkeys, oldest first.
    async fn passkeys_of(&self, user_id: Uuid) -> Result<Vec<StoredPasskey>, StoreError>;

    /// After an authentication: the credential (its counter moved) and the time of use.
    async fn record_passkey_use(&self, id: Uuid, credential: &str) -> Result<(), StoreError>;

    /// Renames one of the user's passkeys; false when it is not theirs.
    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str)
        -> Result<bool, StoreError>;
}

#[async_trait]
pub trait MaintenanceStore: Send + Sync + 'static {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Connections of the pool, for metrics; `None` for a backend without a pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Deletes one batch and answers how many rows went; short statements, so no lock is held
    /// for long.
    async fn purge(&self, batch: PurgeBatch) -> Result<u64, StoreError>;
}
