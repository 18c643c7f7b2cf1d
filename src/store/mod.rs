//! Durable state. One small trait per concern (users, sessions, one-time tokens, outbox, events,
//! signing keys, upkeep), one module per backend with one file per trait. Backends only read and
//! write: the decisions (rotation and reuse, one-time token use) are in `crate::domain`, fed with
//! what the backend read inside its transaction.

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::email::{CanonicalEmail, EmailAddress};
use crate::domain::one_time::{OneTimeAction, OneTimeUse};
use crate::domain::opaque_token::TokenHash;
use crate::domain::user::User;

/// A record built from a row, each field read from the column of the same name through the
/// backend's `Columns::column`, which converts what the database holds. Statements name their
/// columns (or alias them) after the record's fields. Fields after a `;` are local variables
/// (values the caller derived from the row).
macro_rules! record {
    ($row:expr => $record:ident { $($field:ident),+ $(; $($local:ident),+)? $(,)? }) => {
        $record { $($field: $row.column(stringify!($field))?,)+ $($($local,)+)? }
    };
}

mod migrations;
pub mod postgres;
mod records;
pub mod sqlite;

pub use migrations::MigrationTarget;
pub(crate) use migrations::{
    applies_canonical_emails, check_schema, configured_runner, migration_error, stamps,
};
pub use records::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A live account already holds this email.
    #[error("email already registered")]
    EmailTaken,
    /// The change would leave no live, unlocked admin.
    #[error("the last admin")]
    LastAdmin,
    /// The removal would leave the account no way to sign in (no password, passkey or identity).
    #[error("the last way to sign in")]
    LastWayIn,
    /// The signed-in session a write was made for has ended (revoked, expired, its user locked
    /// or deleted): nothing was written. The writes a session asks for that add a way into the
    /// account or move it (a passkey, a provider's identity, a TOTP factor, a new address) check,
    /// in their own transaction, that the asking session still lives: the check at the
    /// request's start is not enough, as an ending of every session of the user (the owner's
    /// reset or recovery, "sign out everywhere", a lock, a deletion) landing between it and the
    /// write would leave what the ended session added. Those endings update the user's row
    /// first, and these writes hold that row (PostgreSQL) or take turns with every write
    /// (SQLite), so such an ending comes wholly before the check (which then fails) or after the
    /// write (and ends or removes what it made). A single sign-out touches only its session: a
    /// write it races is as if made just before it, which nothing undoes anyway.
    #[error("the session that asked has ended")]
    SessionEnded,
    /// The backend cannot be reached or has no free connection in time: retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("store error: {0}")]
    Backend(String),
}

/// What every store call answers.
pub type StoreResult<T> = Result<T, StoreError>;

/// The tables of sign-ins on their way to a session, each row with `user_id` and `consumed_at`:
/// retired when the user's sessions are (a reset, a password change, signing out everywhere, a
/// lock, a deletion).
pub const PENDING_SIGN_INS: [&str; 2] = ["mfa_challenges", "email_logins"];

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
    + CeremonyStore
    + IdentityStore
    + EmailLoginStore
    + WebhookStore
    + MaintenanceStore
{
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;

    /// The live (not deleted) user holding this email, compared by its canonical form.
    async fn user_by_email(&self, email: &CanonicalEmail) -> StoreResult<Option<UserCredentials>>;

    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;

    /// A live user and their password hash, by id.
    async fn user_credentials_by_id(&self, id: Uuid) -> StoreResult<Option<UserCredentials>>;

    /// Replaces the hash of the same password (re-hashing to today's parameters).
    async fn rehash_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()>;

    /// Sets a new password and, in the same transaction, retires every outstanding reset token of
    /// the user (emailed or follow-up): a link mailed before the change opens nothing after it.
    async fn set_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()>;

    /// Marks the user's email verified; false when there is no such live user.
    async fn mark_email_verified(&self, user_id: Uuid) -> StoreResult<bool>;

    /// Applies `update` (name, role, lock); `None` when there is no such live user,
    /// `LastAdmin` when it would demote or lock the last live, unlocked admin (checked with the
    /// write, so two admins demoting each other at once cannot both succeed).
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> StoreResult<Option<User>>;

    /// Whether a deleted account once held this email.
    async fn email_held_by_deleted_user(&self, email: &CanonicalEmail) -> StoreResult<bool>;

    /// Gives a live account a new, verified address; `EmailTaken` when another account holds it.
    /// In the same transaction, every outstanding token mailed to the account (reset,
    /// verification, address change, sign-in mail, and their follow-ups) is used up: a link in
    /// the old mailbox opens nothing once the address has moved on. Made only while the
    /// session that asked for the change lives ([`StoreError::SessionEnded`]).
    async fn change_email(
        &self,
        id: Uuid,
        email: &EmailAddress,
        session_id: Uuid,
    ) -> StoreResult<bool>;

    /// Marks a user deleted (the row stays, the email is free again) and unlinks its identities,
    /// so they may sign up again; false if there was none, `LastAdmin` when it is the last live,
    /// unlocked admin.
    async fn soft_delete_user(&self, id: Uuid) -> StoreResult<bool>;

    /// Live users ordered by (created_at, id), after the cursor, optionally matching `query`
    /// (a case-insensitive substring of the email or the name).
    async fn list_users(&self, page: &UserPage) -> StoreResult<Vec<User>>;
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Creates a session whose first refresh token (generation 0) has the given hash; false,
    /// nothing written, when the user is locked or deleted, or `session.epoch` is given and the
    /// user's sessions have been ended since ([`SessionEpoch`]). The check holds the user's row
    /// until the session is written, so an ending or a lock in flight either comes first (and
    /// refuses it) or sees the session (and revokes it).
    async fn create_session(&self, session: NewSession) -> StoreResult<bool>;

    /// The user behind an access token, if its session is live (not revoked) and the user may
    /// still sign in (not deleted, not locked). The store decides, so a revocation holds across
    /// restarts and nodes whatever a cache remembers.
    async fn live_session_user(&self, session_id: Uuid, user_id: Uuid)
        -> StoreResult<Option<User>>;

    /// Rotates a refresh token atomically: concurrent rotations of one token are serialised on the
    /// session; `domain::rotation::decide` says what the presented token means.
    async fn rotate_refresh_token(&self, rotation: Rotation) -> StoreResult<RotationOutcome>;

    /// Revokes the session a refresh token belongs to; `None` when the token is unknown.
    async fn revoke_session_by_refresh(
        &self,
        presented: TokenHash,
        reason: RevokeReason,
    ) -> StoreResult<Option<RevokedSession>>;

    /// Revokes one session; false when it was already revoked or does not exist.
    async fn revoke_session(&self, session_id: Uuid, reason: RevokeReason) -> StoreResult<bool>;

    /// Revokes every live session of a user but `except` (the caller's own, when it stays) and
    /// returns their ids. In the same transaction the user's [`SessionEpoch`] counts up (first, so
    /// that a session being created waits for this ending, see `create_session`) and the
    /// sign-ins on their way to a session are retired ([`PENDING_SIGN_INS`]: a login waiting for
    /// its second factor, an unused sign-in mail): what proved the old password or came before
    /// the owner's recovery opens nothing.
    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: RevokeReason,
    ) -> StoreResult<Vec<Uuid>>;

    /// Revokes one session if it belongs to `user_id`; false otherwise or if already revoked.
    async fn revoke_session_of(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> StoreResult<bool>;

    /// The user's sessions that are neither revoked nor expired, newest first.
    async fn live_sessions(&self, user_id: Uuid) -> StoreResult<Vec<SessionInfo>>;

    /// Records that a live session of its user proved itself again, now, with its methods;
    /// `None` when the session is revoked or its user may no longer sign in.
    async fn reauthenticate_session(
        &self,
        proof: &SessionProof,
    ) -> StoreResult<Option<SessionOwner>>;
}

#[async_trait]
pub trait OneTimeTokenStore: Send + Sync + 'static {
    /// Stores a one-time token and, in the same transaction, the mail that carries it.
    async fn create_one_time_token(
        &self,
        token: &NewOneTimeToken,
        email: Option<&OutboxEmail>,
    ) -> StoreResult<()>;

    /// Retires the account's outstanding tokens of `kind`: a newer request replaces them even
    /// when it makes no token itself (an address change to a taken address).
    async fn retire_one_time_tokens(
        &self,
        user_id: Uuid,
        kind: crate::domain::one_time::TokenKind,
    ) -> StoreResult<()>;

    /// The token if `domain::one_time::usable` accepts it for `wanted`, else `None`. With
    /// [`OneTimeAction::Consume`] it is used up exactly once (concurrent uses: one wins).
    async fn one_time_token(
        &self,
        hash: TokenHash,
        wanted: &OneTimeUse<'_>,
        action: OneTimeAction,
    ) -> StoreResult<Option<ConsumedToken>>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Puts a mail in the outbox on its own.
    async fn enqueue_email(&self, email: &OutboxEmail) -> StoreResult<()>;

    /// Claims up to `limit` due mails for `lease_seconds` (another node skips them meanwhile; if
    /// this one dies, they come due again) and counts the attempt.
    async fn claim_due_emails(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> StoreResult<Vec<ClaimedEmail>>;

    /// Records how an attempt ended.
    async fn record_delivery(&self, id: Uuid, outcome: &DeliveryOutcome) -> StoreResult<()>;

    /// Mails waiting to be sent (pending, not dead), for metrics.
    async fn outbox_depth(&self) -> StoreResult<i64>;
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Records the event and, in the same transaction, queues its webhook message (if any) for
    /// every enabled endpoint subscribed to its kind (`domain::webhooks::subscribes`): an event
    /// is never recorded without its deliveries. Answers how many deliveries were queued.
    async fn record_event(&self, event: &NewEvent) -> StoreResult<u64>;

    async fn list_events(&self, page: &EventPage) -> StoreResult<Vec<AuthEvent>>;
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync + 'static {
    /// Every stored signing key, oldest first.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;

    /// Stores a new signing key (its `created_at` is the store's clock).
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()>;
}

/// Second factors, recovery codes and the pending second step of logins. The rules (which step a
/// code is, how many attempts a login gets) are in `crate::domain`; every "at most once" here is
/// one conditional statement, so concurrent requests cannot both pass.
#[async_trait]
pub trait MfaStore: Send + Sync + 'static {
    /// Stores a pending TOTP enrolment, replacing the user's earlier pending one.
    async fn create_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()>;

    /// The user's TOTP factor in `state`, if any.
    async fn totp_factor(
        &self,
        user_id: Uuid,
        state: FactorState,
    ) -> StoreResult<Option<TotpFactor>>;

    /// Accepts time step `step` for the factor if it is later than every step accepted before:
    /// false means the code was used already (or an earlier one of a later step was).
    async fn use_totp_step(&self, factor_id: Uuid, step: i64) -> StoreResult<bool>;

    /// Confirms a pending factor with the step of its first code and, in the same transaction,
    /// replaces the user's recovery codes; false when it is no longer pending. Made only while
    /// the enrolling session lives ([`StoreError::SessionEnded`]).
    async fn confirm_totp_factor(&self, confirmation: &TotpConfirmation) -> StoreResult<bool>;

    /// Replaces every recovery code of the user (the old ones stop working).
    async fn replace_recovery_codes(&self, user_id: Uuid, codes: &[TokenHash]) -> StoreResult<()>;

    /// Uses up one recovery code; `None` if it is unknown or used, else how many are left.
    async fn use_recovery_code(&self, user_id: Uuid, code: TokenHash) -> StoreResult<Option<u32>>;

    async fn mfa_status(&self, user_id: Uuid) -> StoreResult<MfaStatus>;

    /// Removes the chosen factors and, when no factor is left, the recovery codes; false when
    /// there was nothing to remove, `LastWayIn` when the one passkey chosen is the account's last
    /// way to sign in (no password, no other passkey, no identity; every factor at once, as an
    /// admin's reset removes them, is not held to it).
    async fn remove_factors(&self, user_id: Uuid, which: FactorChoice) -> StoreResult<bool>;

    async fn create_mfa_challenge(&self, challenge: &NewMfaChallenge) -> StoreResult<()>;

    /// Counts one attempt at a live (unexpired, unused) challenge that has had fewer than
    /// `max_attempts`; `None` otherwise.
    async fn attempt_mfa_challenge(
        &self,
        hash: TokenHash,
        max_attempts: u32,
    ) -> StoreResult<Option<MfaChallenge>>;

    /// Uses the challenge up; false when another request did first.
    async fn consume_mfa_challenge(&self, hash: TokenHash) -> StoreResult<bool>;
}

/// The server-side state of ceremonies of several requests (WebAuthn, a provider's round trip, a
/// pending link): single-use, expiring.
#[async_trait]
pub trait CeremonyStore: Send + Sync + 'static {
    /// Stores a ceremony; false when one with its hash is stored already (a spent ID token seen
    /// again).
    async fn create_ceremony(&self, ceremony: &NewCeremony) -> StoreResult<bool>;

    /// Deletes the ceremony and answers it if it was of `kind` and unexpired: a state is used
    /// once, whatever the outcome.
    async fn take_ceremony(
        &self,
        hash: TokenHash,
        kind: CeremonyKind,
    ) -> StoreResult<Option<Ceremony>>;
}

/// Passwordless sign-in mails. Each "at most once" is one conditional statement.
#[async_trait]
pub trait EmailLoginStore: Send + Sync + 'static {
    /// Stores a sign-in mail's link and code, replacing the account's unused one (one live code
    /// per account), and the mail itself, in one transaction; only while the account's address is
    /// still `login.address` (false, nothing written, when it moved on meanwhile: a link for the
    /// old mailbox must not outlive the change, which retires the ones already written). The
    /// sign-in keeps the user's [`SessionEpoch`] as of now.
    async fn create_email_login(
        &self,
        login: &NewEmailLogin,
        email: &OutboxEmail,
    ) -> StoreResult<bool>;

    /// Uses up the live sign-in whose link this is: its account and the [`SessionEpoch`] it was
    /// sent under, once.
    async fn use_email_login(&self, link_hash: TokenHash) -> StoreResult<Option<UsedEmailLogin>>;

    /// Counts one code submission on the account's live sign-in, while it has had fewer than
    /// `max_attempts`: the code to compare with.
    async fn attempt_email_login_code(
        &self,
        user_id: Uuid,
        max_attempts: u32,
    ) -> StoreResult<Option<EmailLoginCode>>;
}

/// Identities at other providers, linked to accounts.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// The live account an identity is linked to, and its [`SessionEpoch`] read with the link
    /// (so an ending that removes the identity after this read refuses the session).
    async fn identity_owner(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<(User, SessionEpoch)>>;

    /// Links an identity for the account's signed-in session `session_id` ([`StoreError::SessionEnded`]);
    /// false when it is linked already, or the account has one at that provider.
    async fn link_identity(&self, identity: &NewIdentity, session_id: Uuid) -> StoreResult<bool>;

    /// The account's identities, oldest first.
    async fn identities_of(&self, user_id: Uuid) -> StoreResult<Vec<LinkedIdentity>>;

    /// Removes the account's identity at `provider`, unless it is the account's last way to sign
    /// in (it has no password, no passkey and no other identity). Removals of ways in of one
    /// account are serialised (its row locked, or SQLite's one writer), so two at once, of an
    /// identity and a passkey say, cannot both pass.
    async fn unlink_identity(&self, user_id: Uuid, provider: &str) -> StoreResult<Unlinked>;

    /// Removes every identity of the account, last way in or not: for the mailbox's owner
    /// evicting what was set up before the address was proven. How many went.
    async fn remove_identities(&self, user_id: Uuid) -> StoreResult<u64>;

    /// Notes that the identity was just used to sign in.
    async fn record_identity_use(&self, provider: &str, subject: &str) -> StoreResult<()>;
}

/// Passkeys.
#[async_trait]
pub trait PasskeyStore: Send + Sync + 'static {
    /// Stores a passkey for the account's signed-in session `session_id` ([`StoreError::SessionEnded`]);
    /// false when its credential id is registered already (to anyone).
    async fn add_passkey(&self, passkey: &StoredPasskey, session_id: Uuid) -> StoreResult<bool>;

    /// The user's passkeys, oldest first.
    async fn passkeys_of(&self, user_id: Uuid) -> StoreResult<Vec<StoredPasskey>>;

    /// After an authentication: the credential (its counter moved) and the time of use, if the
    /// stored credential is still `previous`; false when another use of it got there first (two
    /// answers with one counter value: a cloned authenticator).
    async fn record_passkey_use(
        &self,
        id: Uuid,
        previous: &str,
        credential: &str,
    ) -> StoreResult<bool>;

    /// Renames one of the user's passkeys; false when it is not theirs.
    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str) -> StoreResult<bool>;
}

/// Webhook endpoints and their deliveries (queued by [`EventStore::record_event`]).
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn create_webhook_endpoint(
        &self,
        endpoint: &NewWebhookEndpoint,
    ) -> StoreResult<WebhookEndpoint>;

    /// Every endpoint, oldest first.
    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>>;

    async fn webhook_endpoint(&self, id: Uuid) -> StoreResult<Option<WebhookEndpoint>>;

    /// Deletes an endpoint and its deliveries; false when there was none.
    async fn delete_webhook_endpoint(&self, id: Uuid) -> StoreResult<bool>;

    /// In one transaction: stores (or updates and enables) each endpoint of the configuration,
    /// and disables the configuration's endpoints that are not in `endpoints` any more.
    async fn sync_configured_endpoints(&self, endpoints: &[NewWebhookEndpoint]) -> StoreResult<()>;

    /// Claims up to `limit` due deliveries of enabled endpoints for `lease_seconds` (another
    /// node skips them meanwhile; if this one dies, they come due again) and counts the attempt.
    async fn claim_due_webhooks(
        &self,
        limit: u32,
        lease_seconds: u64,
    ) -> StoreResult<Vec<ClaimedWebhook>>;

    /// Records how an attempt ended.
    async fn record_webhook_attempt(&self, id: Uuid, attempt: &WebhookAttempt) -> StoreResult<()>;

    /// A page of an endpoint's deliveries, newest first.
    async fn webhook_deliveries(&self, page: &DeliveryPage) -> StoreResult<Vec<WebhookDelivery>>;

    async fn webhook_delivery(
        &self,
        endpoint_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<WebhookDelivery>>;

    /// Queues a dead delivery again, due now, with its attempts back at zero; false when it is
    /// not a dead delivery of that endpoint.
    async fn requeue_webhook_delivery(&self, endpoint_id: Uuid, id: Uuid) -> StoreResult<bool>;

    /// Deliveries waiting to be sent to enabled endpoints, for metrics.
    async fn webhook_queue_depth(&self) -> StoreResult<i64>;
}

#[async_trait]
pub trait MaintenanceStore: Send + Sync + 'static {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;

    /// Connections of the pool, for metrics; `None` for a backend without a pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Deletes one batch and answers how many rows went; short statements, so no lock is held
    /// for long.
    async fn purge(&self, batch: PurgeBatch) -> StoreResult<u64>;
}
