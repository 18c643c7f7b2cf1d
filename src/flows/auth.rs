//! The authentication flows, as sequences of messages to the actors. No HTTP here and no SQL:
//! handlers call these, these call the actors and the store.

use uuid::Uuid;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::flows::audit::EventKind;

use crate::actors::tokens::{
    IssuedTokens, Logout, LogoutAll, PublishedKeys, Rotate, Rotated, VerifyAccess,
};
use crate::domain::assurance::AuthMethods;
use crate::domain::claims::{AccessClaims, Caller};
use crate::domain::client::ClientContext;
use crate::domain::email::{CanonicalEmail, EmailAddress};
use crate::domain::one_time::{OneTimeAction, OneTimeUse, TokenKind};
use crate::domain::opaque_token::OpaqueToken;
use crate::domain::password::PasswordContext;
use crate::domain::user::{check_name, Role, User};
use crate::domain::{lockout, password};
use crate::error::{AppError, FieldError};
use crate::flows::deps::FlowDeps;
use crate::flows::mfa::{AfterFirstFactor, MfaChallengeIssued, MfaService};
use crate::store::{NewUser, StoreError};

/// Longest password accepted at login, in characters (the OpenAPI `maxLength`): longer input is
/// refused before any hashing, so a megabyte "password" cannot buy a megabyte of argon2 input.
pub const MAX_LOGIN_PASSWORD_CHARS: usize = 1024;

pub struct SignupInput {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    pub invitation: Option<Invitation>,
}

/// Where an invitation token came from.
pub enum Invitation {
    /// `invitationToken` in the body: it must be a live invitation.
    Presented(String),
    /// The `one_time_token` cookie: used when it holds an invitation, ignored otherwise.
    Cookie(String),
}

/// What a valid invitation grants.
struct Invited {
    token: OpaqueToken,
    role: Role,
}

pub struct LoginInput {
    pub email: String,
    pub password: String,
}

/// Signup rules beyond the password.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignupRules {
    pub require_email_verification: bool,
}

/// How a signup ended.
pub enum SignupOutcome {
    /// Signed in at once.
    SignedIn(User, IssuedTokens),
    /// Verification is required: a mail is on its way, no tokens yet. When the address already
    /// had an account, `User` is a stand-in shaped like a new one and the owner gets a notice.
    VerificationSent(User),
}

/// How a right password ended.
pub enum LoginOutcome {
    SignedIn(User, IssuedTokens),
    /// The account has a second factor: `POST /auth/mfa/verify` completes the login.
    MfaRequired(MfaChallengeIssued),
}

#[derive(Clone)]
pub struct AuthService {
    deps: FlowDeps,
    signup_rules: SignupRules,
    mfa: MfaService,
}

/// What a signup answers for an address it must not reveal: shaped like a new account, down to
/// the precision of its timestamps (the stores keep microseconds).
fn stand_in(email: String, name: Option<String>) -> User {
    let now = crate::domain::user::at_store_precision(chrono::Utc::now());
    User {
        id: Uuid::new_v4(),
        email,
        name,
        role: Role::User,
        email_verified: false,
        locked: false,
        created_at: now,
        updated_at: now,
    }
}

impl AuthService {
    pub fn new(deps: FlowDeps, signup_rules: SignupRules, mfa: MfaService) -> Self {
        AuthService {
            deps,
            signup_rules,
            mfa,
        }
    }

    #[tracing::instrument(skip_all)]
    pub async fn signup(
        &self,
        input: SignupInput,
        client: &ClientContext,
    ) -> Result<SignupOutcome, AppError> {
        let mut problems = Vec::new();
        let email = EmailAddress::parse_new(&input.email)
            .map_err(|e| problems.push(FieldError::new("email", e.message())))
            .ok();
        let name = check_name(input.name.as_deref())
            .map_err(|e| problems.push(FieldError::new("name", e)))
            .ok()
            .flatten();
        let rules = &self.deps.password_rules;
        let context = PasswordContext::new(
            rules.min_score,
            email
                .as_ref()
                .map_or(input.email.trim(), EmailAddress::as_str),
            name.as_deref(),
            &rules.app_name,
        );
        let password = password::check_new(&input.password, &context)
            .map_err(|e| problems.push(FieldError::new("password", e.message())))
            .ok();
        let (Some(email), Some(password), true) = (email, password, problems.is_empty()) else {
            problems.sort_by_key(|p| {
                ["email", "password", "name"]
                    .iter()
                    .position(|f| *f == p.field)
            });
            return Err(AppError::Validation(problems));
        };

        // The hasher place before any I/O: a signup the pool would refuse costs nothing else.
        let permit = self.deps.hasher.reserve()?;
        rules.refuse_breached(&password, "password").await?;
        let invited = self.check_invitation(input.invitation, &email).await?;
        let hidden = self.signup_rules.require_email_verification && invited.is_none();
        if self.deps.address_retired(email.canonical()).await? {
            if hidden {
                // Same work and the same answer as a fresh signup; the address learns nothing.
                let _ = permit.hash(&password).await?;
                return Ok(SignupOutcome::VerificationSent(stand_in(
                    email.into_string(),
                    name,
                )));
            }
            return Err(AppError::EmailTaken);
        }
        let password_hash = permit.hash(&password).await?;
        if let Some(invited) = &invited {
            // Used up only now, when nothing else can refuse the signup.
            let consume = OneTimeAction::Consume;
            let wanted = OneTimeUse::any(&[TokenKind::Invitation]);
            self.deps
                .one_time_token(&invited.token, wanted, consume)
                .await?;
        }
        let role = invited.as_ref().map_or(Role::User, |i| i.role);
        let account = NewUser {
            // The invitation reached this address: it is verified.
            email_verified: invited.is_some(),
            ..NewUser::new(email.clone(), name.clone(), password_hash, role)
        };
        let created = self.deps.create_account(account, None).await;
        let user = match created {
            Ok(user) => user,
            Err(StoreError::EmailTaken) if hidden => {
                self.deps
                    .tell_account_exists_later(email.canonical().clone());
                return Ok(SignupOutcome::VerificationSent(stand_in(
                    email.into_string(),
                    name,
                )));
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(user_id = %user.id, role = user.role.as_str(), "signed up");
        let details = json!({ "invited": invited.is_some(), "role": user.role.as_str() });
        self.deps
            .audit
            .record(EventKind::Signup, Some(user.id), client, details)
            .await;
        if hidden {
            return Ok(SignupOutcome::VerificationSent(user));
        }
        let tokens = self
            .deps
            .start_session(&user, client, AuthMethods::password())
            .await?;
        Ok(SignupOutcome::SignedIn(user, tokens))
    }

    /// The invitation behind a signup, if any, checked but not yet used up: it must be live and
    /// addressed to the email signing up.
    async fn check_invitation(
        &self,
        invitation: Option<Invitation>,
        email: &EmailAddress,
    ) -> Result<Option<Invited>, AppError> {
        let (token, required) = match invitation {
            None => return Ok(None),
            Some(Invitation::Presented(token)) => (token, true),
            Some(Invitation::Cookie(token)) => (token, false),
        };
        let Some(token) = OpaqueToken::parse(&token) else {
            return if required {
                Err(AppError::OneTimeTokenInvalid)
            } else {
                Ok(None)
            };
        };
        let wanted = OneTimeUse::any(&[TokenKind::Invitation]);
        let peeked = self
            .deps
            .store
            .one_time_token(token.hash(), &wanted, OneTimeAction::Peek);
        let Some(found) = peeked.await? else {
            return if required {
                Err(AppError::OneTimeTokenInvalid)
            } else {
                Ok(None)
            };
        };
        if CanonicalEmail::of(&found.email) != *email.canonical() {
            return Err(AppError::validation(
                "email",
                "must be the address the invitation was sent to",
            ));
        }
        let metadata: serde_json::Value = serde_json::from_str(&found.metadata).unwrap_or_default();
        let role = metadata["role"]
            .as_str()
            .and_then(Role::parse)
            .unwrap_or(Role::User);
        // An invitation grants what its inviter may grant today: an admin since demoted, locked
        // or deleted has invited nobody.
        let inviter = metadata["invitedBy"]
            .as_str()
            .and_then(|id| id.parse::<Uuid>().ok());
        let inviter_may_invite = match inviter {
            Some(id) => self
                .deps
                .store
                .user_by_id(id)
                .await?
                .is_some_and(|admin| admin.role == Role::Admin && !admin.locked),
            None => false,
        };
        if !inviter_may_invite {
            tracing::info!(inviter = ?inviter, "invitation refused: its inviter is no longer an admin");
            return Err(AppError::OneTimeTokenInvalid);
        }
        Ok(Some(Invited { token, role }))
    }

    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        input: LoginInput,
        client: &ClientContext,
    ) -> Result<LoginOutcome, AppError> {
        let mut problems = Vec::new();
        if let Err(e) = EmailAddress::parse(&input.email) {
            problems.push(FieldError::new("email", e.message()));
        }
        if input.password.is_empty() {
            problems.push(FieldError::new("password", "is required"));
        } else if input.password.chars().count() > MAX_LOGIN_PASSWORD_CHARS {
            let message = format!("must be at most {MAX_LOGIN_PASSWORD_CHARS} characters");
            problems.push(FieldError::new("password", message));
        }
        if !problems.is_empty() {
            return Err(AppError::Validation(problems));
        }

        // The hasher place first: a login the pool would refuse costs no lookup and no attempt.
        let permit = self.deps.hasher.reserve()?;
        // The lookup before the attempt, so that a store that cannot answer (503) costs the
        // account nothing: only a verdict on the password counts against it.
        let account = self
            .deps
            .store
            .user_by_email(&CanonicalEmail::of(&input.email))
            .await?;
        // Then the attempt, reserved atomically before any hashing, so concurrent guesses count
        // against each other; unknown emails are throttled the same way, so the answer says
        // nothing about which accounts exist.
        let account_key = lockout::account_key(&input.email);
        self.deps.reserve_attempt(&account_key).await?;

        let password = password::normalize(&input.password);
        // Exactly one verification whether or not the account exists: same work, same time.
        let (user, hash, epoch) = match account {
            // An account made through a provider has no password: the dummy hash, as for no
            // account, and so the same answer.
            Some(account) => (
                Some(account.user),
                password::usable_hash(account.password_hash),
                Some(account.session_epoch),
            ),
            None => (None, None, None),
        };
        let verification = permit.verify(&password, hash).await?;
        // A locked account answers the same whatever the password (after the same work), so
        // guessing at it never confirms the right one for use after an unlock: 403
        // `account_locked`, or, where signup hides which addresses have accounts, the 401 of a
        // wrong password.
        if let Some(locked) = user.as_ref().filter(|user| user.locked) {
            let details = json!({ "reason": "account_locked" });
            self.deps
                .audit
                .record(EventKind::LoginFailed, Some(locked.id), client, details)
                .await;
            return Err(if self.signup_rules.require_email_verification {
                AppError::InvalidCredentials
            } else {
                AppError::AccountLocked
            });
        }
        let (user, epoch) = match (user, epoch) {
            (Some(user), Some(epoch)) if verification.matches => (user, epoch),
            (known, _) => {
                tracing::info!("login failed");
                let user_id = known.map(|u| u.id);
                let reason = if user_id.is_some() {
                    "wrong_password"
                } else {
                    "unknown_email"
                };
                let details = json!({ "reason": reason });
                self.deps
                    .audit
                    .record(EventKind::LoginFailed, user_id, client, details)
                    .await;
                return Err(AppError::InvalidCredentials);
            }
        };
        self.deps.clear_failures(account_key).await?;
        // The right password, but no session: recorded like any refused login.
        let must_be_verified = self.signup_rules.require_email_verification;
        self.deps
            .refuse_locked_or_unverified(&user, must_be_verified, json!({}), client)
            .await?;
        if verification.needs_rehash {
            self.rehash_in_background(user.id, password);
        }
        // A reset or "sign out everywhere" since the password was read: that password opens
        // nothing now.
        let refused = AppError::InvalidCredentials;
        let methods = AuthMethods::password();
        let next = self
            .mfa
            .after_first_factor(&user, methods, Some(epoch), refused, client);
        let tokens = match next.await? {
            AfterFirstFactor::SignedIn(tokens) => tokens,
            AfterFirstFactor::SecondStep(challenge) => {
                tracing::info!(user_id = %user.id, "password right; second factor required");
                return Ok(LoginOutcome::MfaRequired(challenge));
            }
        };
        tracing::info!(user_id = %user.id, "logged in");
        let details = json!({ "sessionId": tokens.session_id });
        self.deps
            .audit
            .record(EventKind::LoginSucceeded, Some(user.id), client, details)
            .await;
        Ok(LoginOutcome::SignedIn(user, tokens))
    }

    /// Re-hashes a password that verified against an imported or outdated hash, after the answer
    /// has gone: the login is not made to wait for a second argon2 run. If the pool is busy, the
    /// next login tries again.
    fn rehash_in_background(&self, user_id: Uuid, password: String) {
        let hasher = self.deps.hasher.clone();
        let store = self.deps.store.clone();
        let password = SecretString::from(password);
        actix::spawn(async move {
            let outcome = match hasher.hash(password.expose_secret()).await {
                Ok(hash) => store
                    .rehash_password(user_id, &hash)
                    .await
                    .map_err(AppError::from),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(%user_id, "password re-hashed with the current parameters")
                }
                Err(e) => tracing::warn!(%user_id, error = %e, "re-hashing postponed"),
            }
        });
    }

    /// Rotates a refresh token; a reused one revokes its session and is audited.
    pub async fn refresh(
        &self,
        presented: String,
        client: &ClientContext,
    ) -> Result<IssuedTokens, AppError> {
        match self.deps.tokens.send(Rotate { presented }).await?? {
            Rotated::Issued(tokens) => Ok(tokens),
            Rotated::Reused {
                session_id,
                user_id,
            } => {
                crate::metrics::refresh_reuse_detected();
                let details = json!({ "sessionId": session_id });
                self.deps
                    .audit
                    .record(
                        EventKind::RefreshReuseDetected,
                        Some(user_id),
                        client,
                        details,
                    )
                    .await;
                Err(AppError::RefreshTokenReused)
            }
        }
    }

    /// The caller behind an access token: a valid signature and a live session.
    pub async fn verify_access(&self, token: String) -> Result<Caller, AppError> {
        self.deps.tokens.send(VerifyAccess { token }).await?
    }

    /// Ends the session of the refresh token or access token presented (idempotent).
    pub async fn logout(
        &self,
        refresh: Option<String>,
        access: Option<AccessClaims>,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        // Whoever's session it was, whether the access token or only the cookie named it.
        let user_id = self.deps.tokens.send(Logout { refresh, access }).await??;
        self.deps
            .audit
            .record(EventKind::Logout, user_id, client, json!({}))
            .await;
        Ok(())
    }

    /// Ends every session of the caller; answers how many were live.
    pub async fn logout_all(
        &self,
        access: AccessClaims,
        client: &ClientContext,
    ) -> Result<usize, AppError> {
        let user_id = access.sub;
        let revoked = self.deps.tokens.send(LogoutAll { user_id }).await??;
        let details = json!({ "revokedSessions": revoked });
        self.deps
            .audit
            .record(EventKind::LogoutAll, Some(user_id), client, details)
            .await;
        Ok(revoked)
    }

    /// The public keys that verify access tokens, as a JWK set.
    pub async fn jwks(&self) -> Result<serde_json::Value, AppError> {
        Ok(self.deps.tokens.send(PublishedKeys).await?)
    }
}
