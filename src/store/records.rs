//! What the store reads and writes: plain records, no behaviour beyond small helpers.

use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::domain::assurance::AuthMethods;
use crate::domain::claims::SessionAssurance;
use crate::domain::email::EmailAddress;
use crate::domain::jwt_algorithm::JwtAlgorithm;
use crate::domain::one_time::TokenKind;
use crate::domain::opaque_token::TokenHash;
use crate::domain::rotation::RotationWindow;
use crate::domain::user::{Role, User};

pub struct NewUser {
    pub id: Uuid,
    /// As typed (normalised, case kept); unique by its canonical form.
    pub email: EmailAddress,
    pub name: Option<String>,
    pub password_hash: String,
    pub role: Role,
    pub email_verified: bool,
    /// When the account was made; `None` is now. Imports keep the original date.
    pub created_at: Option<DateTime<Utc>>,
    /// The verification token and its mail, written in the same transaction as the user, so a
    /// signup is never left without its mail.
    pub verification: Option<(NewOneTimeToken, OutboxEmail)>,
    /// The provider identity an account made by signing in elsewhere is linked to, in the same
    /// transaction: such an account is never left without its way in.
    pub identity: Option<NewIdentity>,
}

impl NewUser {
    /// An account made now: unverified, without a verification mail, linked to no provider.
    /// Callers change what differs with struct update syntax.
    pub fn new(
        email: EmailAddress,
        name: Option<String>,
        password_hash: String,
        role: Role,
    ) -> Self {
        NewUser {
            id: Uuid::new_v4(),
            email,
            name,
            password_hash,
            role,
            email_verified: false,
            created_at: None,
            verification: None,
            identity: None,
        }
    }
}

/// A passwordless sign-in mail's link and code, as stored (hashes).
#[derive(Debug, Clone)]
pub struct NewEmailLogin {
    pub link_hash: TokenHash,
    pub user_id: Uuid,
    /// The account's address the mail goes to: written only while it still is the account's.
    pub address: crate::domain::email::CanonicalEmail,
    /// `domain::email_code::code_hash` of the code.
    pub code_hash: TokenHash,
    pub ttl_seconds: u64,
}

/// A live sign-in mail whose code submission was counted: what to compare the code with, and
/// the link that uses it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailLoginCode {
    pub link_hash: TokenHash,
    pub code_hash: TokenHash,
}

/// A sign-in mail used up: whose it is, and the [`SessionEpoch`] it was sent under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsedEmailLogin {
    pub user_id: Uuid,
    pub epoch: SessionEpoch,
}

/// An identity at another provider, to link to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIdentity {
    /// The provider's name in authd's configuration.
    pub provider: String,
    /// The provider's stable id of the user (`sub`, GitHub's numeric id).
    pub subject: String,
    pub user_id: Uuid,
    /// The address the provider gave, for the owner's list.
    pub email: Option<String>,
}

/// An identity linked to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedIdentity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// How removing an identity went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlinked {
    Removed,
    /// The account has no identity at that provider.
    NotLinked,
    /// It is the account's last way to sign in (no password, no passkey, no other identity).
    LastWayIn,
}

/// A change to an account: each `None` leaves its field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// `Some(None)` clears the display name.
    pub name: Option<Option<String>>,
    pub role: Option<Role>,
    pub locked: Option<bool>,
}

impl UserUpdate {
    /// Whether it could take an admin's rights away (a demotion or a lock), so that the store
    /// must keep another live, unlocked admin.
    pub fn may_remove_an_admin(&self) -> bool {
        self.role.is_some_and(|role| role != Role::Admin) || self.locked == Some(true)
    }
}

/// A user and the hash their password verifies against.
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
    /// Read with the hash: a session the password opens starts only while it is unchanged.
    pub session_epoch: SessionEpoch,
}

/// How many times all of a user's sessions had been ended (a password reset or change, "sign
/// out everywhere", a lock) when a sign-in's proof was read. A session starts only while the
/// user's count is still this one, checked in the transaction that creates it: a password
/// checked, a second step or a sign-in mail used just before such an ending cannot open a
/// session just after it (which the ending would not have seen to revoke).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEpoch(pub i64);

impl SessionEpoch {
    /// The count after one more ending: what a flow that ends the sessions itself, after reading
    /// its proof, expects when nobody else ended them meanwhile.
    pub fn next(self) -> SessionEpoch {
        SessionEpoch(self.0.saturating_add(1))
    }
}

pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub refresh_hash: TokenHash,
    pub refresh_ttl_seconds: u64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// What the user proved to open it; it was authenticated now.
    pub methods: AuthMethods,
    /// The user's [`SessionEpoch`] when the proof was read; `None` for proofs that ending every
    /// session does not withdraw (a new account's password, a passkey, a provider's word).
    pub epoch: Option<SessionEpoch>,
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

impl Rotation {
    pub fn window(&self) -> RotationWindow {
        RotationWindow {
            grace_seconds: self.grace_seconds,
            session_max_lifetime_seconds: self.session_max_lifetime_seconds,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOwner {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub assurance: SessionAssurance,
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
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// One page of the admin user list.
#[derive(Debug, Clone, Default)]
pub struct UserPage {
    /// The last (created_at, id) of the previous page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
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

/// Whether storing `token` with `email` first retires the outstanding tokens of its kind for the
/// same account (or, without one, the same `email`, which the flow stores canonical): a mailed
/// token (not a follow-up) of a kind that replaces older ones.
pub fn replaces_older(token: &NewOneTimeToken, email: Option<&OutboxEmail>) -> bool {
    email.is_some() && !token.follow_up && token.kind.replaces_older()
}

/// A consumed one-time token: what it was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedToken {
    pub kind: TokenKind,
    pub user_id: Option<Uuid>,
    pub email: String,
    pub metadata: String,
    /// When the token would have expired unused.
    pub expires_at: DateTime<Utc>,
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

impl DeliveryOutcome {
    /// A failed attempt: tried again after `retry_after_seconds`, or dead without them.
    pub fn failed(error: String, retry_after_seconds: Option<u64>) -> Self {
        match retry_after_seconds {
            Some(after_seconds) => DeliveryOutcome::Retry {
                after_seconds,
                error,
            },
            None => DeliveryOutcome::Dead { error },
        }
    }
}

/// An audit event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    /// The account the event is about.
    pub user_id: Option<Uuid>,
    /// The admin who acted, for an admin's action.
    pub actor_id: Option<Uuid>,
    pub kind: &'static str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// JSON object text.
    pub details: String,
    /// The webhook message announcing the event (JSON text, see `domain::webhooks::Message`),
    /// queued for every enabled endpoint subscribed to its kind in the event's own transaction;
    /// `None` when webhooks are off.
    pub webhook_message: Option<String>,
}

/// A recorded audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub kind: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
    pub created_at: DateTime<Utc>,
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// Only this user's events.
    pub user_id: Option<Uuid>,
    /// Only the events this admin caused.
    pub actor_id: Option<Uuid>,
    /// The last (created_at, id) of the previous page.
    pub before: Option<(DateTime<Utc>, Uuid)>,
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
    /// Second login steps expired, or used longer ago than the retention.
    SpentMfaChallenges,
    /// TOTP enrolments never confirmed, older than the retention.
    AbandonedEnrolments,
    /// WebAuthn ceremonies never finished.
    ExpiredCeremonies,
    /// Passwordless sign-in mails expired, or used longer ago than the retention.
    SpentEmailLogins,
    /// Webhook deliveries sent (or dead) longer ago than the retention.
    DeliveredWebhooks,
}

/// One janitor batch: at most `limit` rows of `target`, older than `retention_seconds` where the
/// target has a retention.
#[derive(Debug, Clone, Copy)]
pub struct PurgeBatch {
    pub target: PurgeTarget,
    pub retention_seconds: u64,
    pub limit: u32,
}

impl PurgeTarget {
    pub const ALL: [PurgeTarget; 10] = [
        PurgeTarget::ExpiredRefreshTokens,
        PurgeTarget::DeadSessions,
        PurgeTarget::SpentOneTimeTokens,
        PurgeTarget::DeliveredEmails,
        PurgeTarget::OldEvents,
        PurgeTarget::SpentMfaChallenges,
        PurgeTarget::AbandonedEnrolments,
        PurgeTarget::ExpiredCeremonies,
        PurgeTarget::SpentEmailLogins,
        PurgeTarget::DeliveredWebhooks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PurgeTarget::ExpiredRefreshTokens => "refresh_tokens",
            PurgeTarget::DeadSessions => "sessions",
            PurgeTarget::SpentOneTimeTokens => "one_time_tokens",
            PurgeTarget::DeliveredEmails => "email_outbox",
            PurgeTarget::OldEvents => "auth_events",
            PurgeTarget::SpentMfaChallenges => "mfa_challenges",
            PurgeTarget::AbandonedEnrolments => "mfa_factors",
            PurgeTarget::ExpiredCeremonies => "ceremonies",
            PurgeTarget::SpentEmailLogins => "email_logins",
            PurgeTarget::DeliveredWebhooks => "webhook_deliveries",
        }
    }

    /// The column that identifies a row of [`PurgeTarget::name`].
    pub fn key(self) -> &'static str {
        match self {
            PurgeTarget::ExpiredRefreshTokens
            | PurgeTarget::SpentOneTimeTokens
            | PurgeTarget::SpentMfaChallenges
            | PurgeTarget::ExpiredCeremonies => "token_hash",
            PurgeTarget::DeadSessions
            | PurgeTarget::DeliveredEmails
            | PurgeTarget::OldEvents
            | PurgeTarget::AbandonedEnrolments
            | PurgeTarget::DeliveredWebhooks => "id",
            PurgeTarget::SpentEmailLogins => "link_hash",
        }
    }

    /// Which rows are dead, as an SQL condition both backends run: `bounds.now` is the current
    /// time and `bounds.cutoff` that time less the retention, each backend's `purge` saying how
    /// its clock and its times are written.
    pub fn dead_rows(self) -> &'static str {
        match self {
            PurgeTarget::ExpiredRefreshTokens => "expires_at < bounds.cutoff",
            PurgeTarget::DeadSessions => "expires_at < bounds.now OR revoked_at < bounds.cutoff",
            PurgeTarget::SpentOneTimeTokens
            | PurgeTarget::SpentMfaChallenges
            | PurgeTarget::SpentEmailLogins => {
                "expires_at < bounds.now OR consumed_at < bounds.cutoff"
            }
            PurgeTarget::DeliveredEmails => {
                "status IN ('sent', 'dead') AND COALESCE(sent_at, next_attempt_at) < bounds.cutoff"
            }
            PurgeTarget::OldEvents => "created_at < bounds.cutoff",
            PurgeTarget::AbandonedEnrolments => {
                "confirmed_at IS NULL AND created_at < bounds.cutoff"
            }
            PurgeTarget::ExpiredCeremonies => "expires_at < bounds.now",
            PurgeTarget::DeliveredWebhooks => {
                "status IN ('sent', 'dead') AND COALESCE(delivered_at, next_attempt_at) < bounds.cutoff"
            }
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
    /// The account's address changed: the other devices sign in again.
    EmailChanged,
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
            RevokeReason::EmailChanged => "email_changed",
        }
    }
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

/// A signing key as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub algorithm: JwtAlgorithm,
    /// Nonce followed by the AES-256-GCM ciphertext of the private key's DER.
    pub private_key: Vec<u8>,
    /// The public JWK (with `kid`, `alg`, `use`), as published.
    pub public_jwk: String,
    pub created_at: DateTime<Utc>,
}

/// A live session proving itself again (step-up, a factor enrolled): its new methods, as of now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionProof {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub methods: AuthMethods,
}

/// The first code of a pending TOTP enrolment, and the recovery codes that come with it.
#[derive(Debug, Clone)]
pub struct TotpConfirmation {
    pub factor_id: Uuid,
    /// The enrolling session: nothing is confirmed once it has ended.
    pub session_id: Uuid,
    /// The time step of the code: later codes must be of later steps.
    pub step: i64,
    pub recovery_codes: Vec<TokenHash>,
}

/// A TOTP factor: its secret sealed under `tokens.key_encryption_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    pub id: Uuid,
    pub user_id: Uuid,
    pub sealed_secret: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// `None` while the enrolment waits for its first code.
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// Which TOTP factor of a user to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorState {
    /// Enrolled, waiting for the first code.
    Pending,
    /// Confirmed: it is a second factor of the account.
    Active,
}

/// A user's second factors, as their owner and admins see them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MfaStatus {
    /// When the active TOTP factor was confirmed, if there is one.
    pub totp_confirmed_at: Option<DateTime<Utc>>,
    /// Registered passkeys.
    pub passkeys: u32,
    /// Recovery codes not used yet.
    pub recovery_codes_left: u32,
}

impl MfaStatus {
    /// Whether the account has a second factor (recovery codes alone are not one: they come
    /// with a factor and go with the last one).
    pub fn enabled(&self) -> bool {
        self.totp_confirmed_at.is_some() || self.passkeys > 0
    }
}

/// Which second factors to remove; the recovery codes go with the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorChoice {
    Totp,
    Passkey(Uuid),
    /// Every factor (an admin's reset).
    All,
}

/// A registered passkey: the credential as webauthn-rs serialises it (JSON), and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub credential_id: Vec<u8>,
    pub name: String,
    pub credential: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What the server-side state of a ceremony (a flow of several requests) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// WebAuthn: registering a passkey.
    Registration,
    /// WebAuthn: a passkey as a login's second step or for step-up.
    SecondFactor,
    /// WebAuthn: signing in with a passkey alone.
    Passwordless,
    /// A sign-in at another provider, between the redirect and its callback (state, PKCE
    /// verifier, nonce, where to return).
    OAuthCallback,
    /// An identity whose address belongs to an account, waiting for that account to sign in
    /// and link it.
    IdentityLink,
    /// An ID token a native app exchanged, kept until it expires so it is used once.
    SpentIdToken,
    /// A nonce authd gave a native app for the ID token it is about to ask its provider for
    /// (`oauth.native_nonces = "issued"`); the state is the provider's name.
    NativeNonce,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Registration => "registration",
            CeremonyKind::SecondFactor => "second_factor",
            CeremonyKind::Passwordless => "passwordless",
            CeremonyKind::OAuthCallback => "oauth_callback",
            CeremonyKind::IdentityLink => "identity_link",
            CeremonyKind::SpentIdToken => "spent_id_token",
            CeremonyKind::NativeNonce => "native_nonce",
        }
    }
}

/// The state of a ceremony between its two requests, under the hash of its handle.
#[derive(Debug, Clone)]
pub struct NewCeremony {
    pub hash: TokenHash,
    pub kind: CeremonyKind,
    /// `None` for a passwordless login for an address without an account, or a sign-in at a
    /// provider by someone not signed in.
    pub user_id: Option<Uuid>,
    /// JSON: webauthn-rs's state, or the flow's.
    pub state: String,
    pub ttl_seconds: u64,
}

/// A ceremony taken (and so used up): whose, and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    pub user_id: Option<Uuid>,
    pub state: String,
}

/// The second step of a login, pending: its token (hashed) and what the first step proved.
#[derive(Debug, Clone)]
pub struct NewMfaChallenge {
    pub hash: TokenHash,
    pub user_id: Uuid,
    pub methods: AuthMethods,
    pub ttl_seconds: u64,
    /// The [`SessionEpoch`] the first step was proved under; `None`: the user's current one.
    pub epoch: Option<SessionEpoch>,
}

/// A pending login whose attempt was counted: whose it is, what the first step proved, and
/// under which [`SessionEpoch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub user_id: Uuid,
    pub methods: AuthMethods,
    pub epoch: SessionEpoch,
}

/// Where a webhook endpoint was registered: the configuration (`webhooks.endpoints`, upserted at
/// start) or the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointSource {
    Config,
    Api,
}

impl EndpointSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointSource::Config => "config",
            EndpointSource::Api => "api",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "config" => Some(EndpointSource::Config),
            "api" => Some(EndpointSource::Api),
            _ => None,
        }
    }
}

/// A webhook endpoint to store (or, from the configuration, to update).
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// `whsec_...` sealed under `tokens.key_encryption_key`, the endpoint id bound in.
    pub sealed_secret: Vec<u8>,
    /// Audit event kinds, or `*`.
    pub events: Vec<String>,
    pub source: EndpointSource,
}

/// A webhook endpoint as the admin sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    /// False for an endpoint of the configuration that has left it: nothing is queued for it
    /// and its pending deliveries wait, in case it comes back.
    pub enabled: bool,
    pub source: EndpointSource,
    pub created_at: DateTime<Utc>,
}

/// A delivery the dispatcher has claimed, with what it needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedWebhook {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The message id (`webhook-id`).
    pub event_id: Uuid,
    pub payload: String,
    pub url: String,
    pub sealed_secret: Vec<u8>,
    /// Attempts made so far, this one included.
    pub attempts: u32,
}

/// How one attempt at a delivery ended, and the HTTP status if the endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub outcome: DeliveryOutcome,
    pub status: Option<u16>,
}

/// A webhook delivery, as the admin's delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_kind: String,
    pub payload: String,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One page of an endpoint's delivery log, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    pub endpoint_id: Uuid,
    /// The last (created_at, id) of the previous page.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: u32,
}
