//! Second factors: TOTP enrolment and removal, recovery codes, the second step of a login, and
//! re-authentication (step-up) for sensitive actions. Like the other flows: messages to the
//! actors, calls to the store, no HTTP and no SQL.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::actors::tokens::{AccessToken, IssuedTokens, Reauthenticate};
use crate::config::{MfaSettings, Secret};
use crate::domain::assurance::{AuthMethod, AuthMethods};
use crate::domain::claims::AccessClaims;
use crate::domain::client::ClientContext;
use crate::domain::messages::MessageKind;
use crate::domain::mfa::{generate_recovery_codes, recovery_code_hash, TotpSecret};
use crate::domain::opaque_token::{OpaqueToken, TokenHash};
use crate::domain::user::User;
use crate::error::AppError;
use crate::flows::audit::EventKind;
use crate::flows::deps::FlowDeps;
use crate::store::{
    FactorChoice, FactorState, MfaChallenge, MfaStatus, NewMfaChallenge, SessionEpoch,
    SessionProof, TotpConfirmation, TotpFactor,
};

/// The configured MFA rules and the key that seals TOTP secrets.
pub struct MfaRules {
    pub settings: MfaSettings,
    pub key_encryption_key: Secret,
    /// The `issuer` of `otpauth://` URIs: how authenticator apps label the account.
    pub issuer: String,
    /// The WebAuthn relying party; `None` when passkeys are off.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    pub passkey_ceremony_ttl_seconds: u64,
    /// Derives the stand-in credential id of a passwordless login for an address without
    /// passkeys (an HMAC with its own label, so the key's other use is not exposed).
    pub decoy_key: Secret,
}

/// A second factor presented by a user (no `Debug`: it holds a code).
#[derive(Clone)]
pub enum SecondFactor {
    Totp(String),
    RecoveryCode(String),
    /// A WebAuthn assertion (`PublicKeyCredential` JSON) answering the ceremony started for it.
    Passkey(serde_json::Value),
}

impl SecondFactor {
    /// The one factor of a body with the optional fields `code`, `recoveryCode` and
    /// `credential` (a passkey's assertion).
    pub fn from_fields(
        code: Option<String>,
        recovery_code: Option<String>,
        credential: Option<serde_json::Value>,
    ) -> Result<Option<Self>, AppError> {
        match (code, recovery_code, credential) {
            (Some(code), None, None) => Ok(Some(SecondFactor::Totp(code))),
            (None, Some(code), None) => Ok(Some(SecondFactor::RecoveryCode(code))),
            (None, None, Some(credential)) => Ok(Some(SecondFactor::Passkey(credential))),
            (None, None, None) => Ok(None),
            _ => Err(AppError::validation(
                "code",
                "give one of code, recoveryCode and credential",
            )),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            SecondFactor::Totp(_) => "totp",
            SecondFactor::RecoveryCode(_) => "recovery_code",
            SecondFactor::Passkey(_) => "passkey",
        }
    }
}

/// A login whose password was right, waiting for its second factor (no `Debug`: the token).
#[derive(Clone)]
pub struct MfaChallengeIssued {
    pub mfa_token: String,
    /// What `POST /auth/mfa/verify` accepts for this account: `totp`, `recovery_code`.
    pub methods: Vec<&'static str>,
    pub expires_in: u64,
}

/// Where a first factor led ([`MfaService::after_first_factor`]).
pub enum AfterFirstFactor {
    /// The account has a second factor: no session until `POST /auth/mfa/verify`.
    SecondStep(MfaChallengeIssued),
    SignedIn(IssuedTokens),
}

/// A started TOTP enrolment: what the authenticator app needs (no `Debug`: the secret).
#[derive(Clone)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
    pub expires_in: u64,
}

/// A confirmed enrolment: the recovery codes (shown this once) and an access token whose session
/// now counts the new factor.
#[derive(Clone)]
pub struct TotpConfirmed {
    pub recovery_codes: Vec<String>,
    pub access: AccessToken,
}

/// A change to a user's factors that the owner is told about and that the audit log records.
#[derive(Debug, Clone, Copy)]
pub(super) enum FactorChange {
    Enabled,
    CodesRegenerated,
    /// By this admin.
    AdminReset(Uuid),
}

impl FactorChange {
    fn notice_and_event(self) -> (MessageKind, EventKind) {
        match self {
            FactorChange::Enabled => (MessageKind::MfaEnabled, EventKind::MfaEnabled),
            FactorChange::CodesRegenerated => (
                MessageKind::RecoveryCodesRegenerated,
                EventKind::RecoveryCodesRegenerated,
            ),
            FactorChange::AdminReset(_) => (MessageKind::MfaDisabled, EventKind::AdminMfaReset),
        }
    }
}

#[derive(Clone)]
pub struct MfaService {
    pub(super) deps: FlowDeps,
    pub(super) rules: Arc<MfaRules>,
}

/// The associated data a factor's secret is sealed with: a sealed secret copied onto another
/// factor's row does not open.
fn sealing_label(factor_id: Uuid) -> String {
    format!("totp:{factor_id}")
}

impl MfaService {
    pub fn new(deps: FlowDeps, rules: Arc<MfaRules>) -> Self {
        MfaService { deps, rules }
    }

    /// A fresh set of recovery codes: as shown to the user, and as stored (hashes).
    pub(super) fn fresh_recovery_codes() -> (Vec<String>, Vec<TokenHash>) {
        let codes = generate_recovery_codes();
        let hashes = codes.iter().filter_map(|c| recovery_code_hash(c)).collect();
        (codes, hashes)
    }

    /// Tells the owner about a change to their factors by mail and records it in the audit log.
    pub(super) async fn announce(
        &self,
        user: &User,
        change: FactorChange,
        details: serde_json::Value,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        let (notice, event) = change.notice_and_event();
        self.deps
            .outbox
            .send_notice(notice, &user.email, user.name_for_mail())
            .await?;
        let audit = &self.deps.audit;
        match change {
            FactorChange::AdminReset(admin_id) => {
                audit
                    .record_admin_action(event, Some(user.id), admin_id, client, details)
                    .await
            }
            _ => audit.record(event, Some(user.id), client, details).await,
        }
        Ok(())
    }

    /// The user's second factors.
    pub async fn status(&self, user_id: Uuid) -> Result<MfaStatus, AppError> {
        Ok(self.deps.store.mfa_status(user_id).await?)
    }

    /// Where a first factor (a password, a sign-in mail, a provider) leads: the second step when
    /// the account has a factor, else a session. `epoch`: the [`SessionEpoch`] the first factor
    /// was read under (`None`: an account made just now), which the second step, or the session
    /// at once, must find unchanged: `refused` (audited) when every session of the user has been
    /// ended since.
    pub async fn after_first_factor(
        &self,
        user: &User,
        methods: AuthMethods,
        epoch: Option<SessionEpoch>,
        refused: AppError,
        client: &ClientContext,
    ) -> Result<AfterFirstFactor, AppError> {
        if let Some(challenge) = self.challenge(user, methods.clone(), epoch).await? {
            return Ok(AfterFirstFactor::SecondStep(challenge));
        }
        let deps = &self.deps;
        let tokens = match epoch {
            Some(epoch) => {
                let start = deps.start_session_since(user, client, methods, epoch, refused);
                start.await?
            }
            None => deps.start_session(user, client, methods).await?,
        };
        Ok(AfterFirstFactor::SignedIn(tokens))
    }

    /// The second step of a sign-in when the account has a factor, else `None`.
    async fn challenge(
        &self,
        user: &User,
        first_step: AuthMethods,
        epoch: Option<SessionEpoch>,
    ) -> Result<Option<MfaChallengeIssued>, AppError> {
        let status = self.deps.store.mfa_status(user.id).await?;
        if !status.enabled() {
            return Ok(None);
        }
        let token = OpaqueToken::generate();
        let ttl_seconds = self.rules.settings.challenge_ttl_seconds;
        self.deps
            .store
            .create_mfa_challenge(&NewMfaChallenge {
                hash: token.hash(),
                user_id: user.id,
                methods: first_step,
                ttl_seconds,
                epoch,
            })
            .await?;
        let mut methods = Vec::new();
        if status.totp_confirmed_at.is_some() {
            methods.push(AuthMethod::Totp.as_str());
        }
        if status.passkeys > 0 {
            methods.push("passkey");
        }
        if status.recovery_codes_left > 0 {
            methods.push(AuthMethod::RecoveryCode.as_str());
        }
        Ok(Some(MfaChallengeIssued {
            mfa_token: token.as_str().to_string(),
            methods,
            expires_in: ttl_seconds,
        }))
    }

    /// Completes a login with its second factor: the `mfaToken` is single-use, expires, and
    /// allows `auth.mfa.challenge_max_attempts` codes; the account's factor throttling applies.
    #[tracing::instrument(skip_all)]
    pub async fn verify_login(
        &self,
        mfa_token: &str,
        proof: SecondFactor,
        client: &ClientContext,
    ) -> Result<(User, IssuedTokens), AppError> {
        let token = OpaqueToken::parse(mfa_token).ok_or(AppError::MfaTokenInvalid)?;
        let store = &self.deps.store;
        let (user, pending) = self.pending_login(&token).await?;
        let method = self
            .check_second_factor(&user, &proof, Some(token.hash()), "login", client)
            .await?;
        if !store.consume_mfa_challenge(token.hash()).await? {
            return Err(AppError::MfaTokenInvalid);
        }
        let methods = pending.methods.with(method);
        let refused = AppError::MfaTokenInvalid;
        let tokens = self
            .deps
            .start_session_since(&user, client, methods, pending.epoch, refused)
            .await?;
        tracing::info!(user_id = %user.id, method = method.as_str(), "logged in with a second factor");
        let details = json!({ "sessionId": tokens.session_id, "secondFactor": method.as_str() });
        self.deps
            .audit
            .record(EventKind::LoginSucceeded, Some(user.id), client, details)
            .await;
        Ok((user, tokens))
    }

    /// The user of a pending login and what its first step proved, counting an attempt on its
    /// `mfaToken`. A user locked or deleted since the password step gets no session.
    pub(super) async fn pending_login(
        &self,
        token: &OpaqueToken,
    ) -> Result<(User, MfaChallenge), AppError> {
        let max_attempts = self.rules.settings.challenge_max_attempts;
        let challenge = self
            .deps
            .store
            .attempt_mfa_challenge(token.hash(), max_attempts)
            .await?
            .ok_or(AppError::MfaTokenInvalid)?;
        let user = self
            .deps
            .store
            .user_by_id(challenge.user_id)
            .await?
            .filter(|user| !user.locked)
            .ok_or(AppError::MfaTokenInvalid)?;
        Ok((user, challenge))
    }

    /// Checks a second factor of `user`, each time step, recovery code or passkey ceremony
    /// accepted at most once, under the account's factor throttling; a failure is audited.
    /// `ceremony`: where the state of a passkey's ceremony is kept.
    async fn check_second_factor(
        &self,
        user: &User,
        proof: &SecondFactor,
        ceremony: Option<TokenHash>,
        step: &'static str,
        client: &ClientContext,
    ) -> Result<AuthMethod, AppError> {
        let throttle_key = format!("mfa:{}", user.id);
        if let Err(e) = self.deps.reserve_attempt(&throttle_key).await {
            crate::metrics::mfa_outcome(step, "throttled");
            return Err(e);
        }
        let outcome = match proof {
            SecondFactor::Totp(code) => self
                .use_totp_code(user.id, code)
                .await?
                .map_or(Ok(AuthMethod::Totp), Err),
            SecondFactor::RecoveryCode(code) => self
                .use_recovery_code(user, code, client)
                .await?
                .map_or(Ok(AuthMethod::RecoveryCode), Err),
            SecondFactor::Passkey(credential) => match ceremony {
                Some(hash) => self
                    .verify_assertion(user.id, hash, credential)
                    .await?
                    .ok_or("failed"),
                None => Err("failed"),
            },
        };
        if let Err(reason) = outcome {
            crate::metrics::mfa_outcome(step, reason);
            tracing::info!(user_id = %user.id, step, reason, "second factor refused");
            let details = json!({ "method": proof.name(), "step": step, "reason": reason });
            self.deps
                .audit
                .record(EventKind::MfaFailed, Some(user.id), client, details)
                .await;
            return Err(AppError::InvalidMfaCode);
        }
        crate::metrics::mfa_outcome(step, "passed");
        self.deps.clear_failures(throttle_key).await?;
        outcome.map_err(|_| AppError::InvalidMfaCode)
    }

    /// `None` when the code is accepted, else why not.
    async fn use_totp_code(
        &self,
        user_id: Uuid,
        code: &str,
    ) -> Result<Option<&'static str>, AppError> {
        let store = &self.deps.store;
        let Some(factor) = store.totp_factor(user_id, FactorState::Active).await? else {
            return Ok(Some("failed"));
        };
        let secret = self.open(&factor)?;
        let now = Utc::now().timestamp();
        let Some(step) = secret.matching_step(code, now, self.rules.settings.totp_skew_steps)
        else {
            return Ok(Some("failed"));
        };
        if !store.use_totp_step(factor.id, step).await? {
            return Ok(Some("replayed"));
        }
        Ok(None)
    }

    async fn use_recovery_code(
        &self,
        user: &User,
        code: &str,
        client: &ClientContext,
    ) -> Result<Option<&'static str>, AppError> {
        let Some(hash) = recovery_code_hash(code) else {
            return Ok(Some("failed"));
        };
        let Some(left) = self.deps.store.use_recovery_code(user.id, hash).await? else {
            return Ok(Some("failed"));
        };
        self.deps
            .outbox
            .send_notice(
                MessageKind::RecoveryCodeUsed,
                &user.email,
                user.name_for_mail(),
            )
            .await?;
        let details = json!({ "left": left });
        self.deps
            .audit
            .record(EventKind::RecoveryCodeUsed, Some(user.id), client, details)
            .await;
        Ok(None)
    }

    fn open(&self, factor: &TotpFactor) -> Result<TotpSecret, AppError> {
        let kek = self.rules.key_encryption_key.expose().as_bytes();
        crate::keys::decrypt(&factor.sealed_secret, kek, &sealing_label(factor.id))
            .map(TotpSecret::from_bytes)
            .map_err(|_| {
                AppError::Internal(
                    "a TOTP secret does not open (wrong tokens.key_encryption_key?)".into(),
                )
            })
    }

    /// Starts a TOTP enrolment (replacing an unconfirmed one): the secret and its URI. Needs a
    /// recent sign-in; refused while a TOTP factor is active.
    pub async fn begin_totp(
        &self,
        caller: &AccessClaims,
        user: &User,
    ) -> Result<TotpEnrolment, AppError> {
        if !self.rules.settings.totp_enabled {
            return Err(AppError::NotFound);
        }
        self.deps.require_step_up(caller).await?;
        if self.status(user.id).await?.enabled() {
            return Err(AppError::MfaAlreadyEnabled);
        }
        let secret = TotpSecret::generate();
        let id = Uuid::new_v4();
        let kek = self.rules.key_encryption_key.expose().as_bytes();
        let sealed_secret = crate::keys::encrypt(secret.as_bytes(), kek, &sealing_label(id))
            .map_err(AppError::Internal)?;
        let otpauth_uri = secret
            .otpauth_uri(&self.rules.issuer, &user.email)
            .ok_or_else(|| AppError::Internal("the otpauth URI cannot be built".into()))?;
        self.deps
            .store
            .create_totp_factor(&TotpFactor {
                id,
                user_id: user.id,
                sealed_secret,
                created_at: Utc::now(),
                confirmed_at: None,
            })
            .await?;
        Ok(TotpEnrolment {
            secret: secret.base32(),
            otpauth_uri,
            expires_in: self.rules.settings.enrolment_ttl_seconds,
        })
    }

    /// Confirms the pending enrolment with a first code: the factor is active, a fresh set of
    /// recovery codes replaces any old one, and the caller's session counts the factor.
    pub async fn confirm_totp(
        &self,
        caller: &AccessClaims,
        user: &User,
        code: &str,
        client: &ClientContext,
    ) -> Result<TotpConfirmed, AppError> {
        self.deps.require_step_up(caller).await?;
        let store = &self.deps.store;
        let ttl = chrono::Duration::seconds(
            i64::try_from(self.rules.settings.enrolment_ttl_seconds).unwrap_or(i64::MAX / 1000),
        );
        let pending = store
            .totp_factor(user.id, FactorState::Pending)
            .await?
            .filter(|factor| factor.created_at + ttl > Utc::now())
            .ok_or(AppError::NotFound)?;
        let throttle_key = format!("mfa:{}", user.id);
        self.deps.reserve_attempt(&throttle_key).await?;
        let secret = self.open(&pending)?;
        let now = Utc::now().timestamp();
        let Some(step) = secret.matching_step(code, now, self.rules.settings.totp_skew_steps)
        else {
            crate::metrics::mfa_outcome("enrolment", "failed");
            let details = json!({ "method": "totp", "step": "enrolment", "reason": "failed" });
            self.deps
                .audit
                .record(EventKind::MfaFailed, Some(user.id), client, details)
                .await;
            return Err(AppError::validation(
                "code",
                "is not the authenticator's current code",
            ));
        };
        let (codes, hashes) = Self::fresh_recovery_codes();
        let confirmation = TotpConfirmation {
            factor_id: pending.id,
            session_id: caller.sid,
            step,
            recovery_codes: hashes,
        };
        if !store.confirm_totp_factor(&confirmation).await? {
            // Confirmed meanwhile, by a racing request or another enrolment.
            return Err(if self.status(user.id).await?.enabled() {
                AppError::MfaAlreadyEnabled
            } else {
                AppError::NotFound
            });
        }
        crate::metrics::mfa_outcome("enrolment", "passed");
        self.deps.clear_failures(throttle_key).await?;
        let methods = AuthMethods::of(&[AuthMethod::Password, AuthMethod::Totp]);
        let access = self.reauthenticate_session(caller, methods).await?;
        let details = json!({ "method": "totp" });
        self.announce(user, FactorChange::Enabled, details, client)
            .await?;
        Ok(TotpConfirmed {
            recovery_codes: codes,
            access,
        })
    }

    /// Removes one of the caller's second factors (needs a recent level-2 sign-in); the recovery
    /// codes go with the last one.
    pub async fn remove(
        &self,
        caller: &AccessClaims,
        user: &User,
        which: FactorChoice,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        self.deps.require_step_up(caller).await?;
        if !self.deps.store.remove_factors(user.id, which).await? {
            return Err(AppError::NotFound);
        }
        // The owner hears of it when no factor is left; a passkey among several is only audited.
        if !self.status(user.id).await?.enabled() {
            self.deps
                .outbox
                .send_notice(MessageKind::MfaDisabled, &user.email, user.name_for_mail())
                .await?;
        }
        let details = match which {
            FactorChoice::Passkey(id) => json!({ "method": "passkey", "passkeyId": id }),
            _ => json!({ "method": "totp" }),
        };
        self.deps
            .audit
            .record(EventKind::MfaDisabled, Some(user.id), client, details)
            .await;
        Ok(())
    }

    /// A new set of recovery codes; the old ones stop working.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &AccessClaims,
        user: &User,
        client: &ClientContext,
    ) -> Result<Vec<String>, AppError> {
        self.deps.require_step_up(caller).await?;
        if !self.status(user.id).await?.enabled() {
            return Err(AppError::NotFound);
        }
        let (codes, hashes) = Self::fresh_recovery_codes();
        self.deps
            .store
            .replace_recovery_codes(user.id, &hashes)
            .await?;
        self.announce(user, FactorChange::CodesRegenerated, json!({}), client)
            .await?;
        Ok(codes)
    }

    /// Step-up: the caller's session proves itself again with the password and, where the
    /// account has one, a second factor. Answers an access token that says so.
    /// A passkey's assertion (`ceremony`: the id its options came with) is enough on its own:
    /// it is a factor of two kinds.
    pub async fn reauthenticate(
        &self,
        caller: &AccessClaims,
        password: &str,
        proof: Option<SecondFactor>,
        ceremony: Option<&str>,
        client: &ClientContext,
    ) -> Result<AccessToken, AppError> {
        let methods = if let Some(SecondFactor::Passkey(_)) = &proof {
            let user = self
                .deps
                .store
                .user_by_id(caller.sub)
                .await?
                .ok_or(AppError::TokenInvalid)?;
            let hash = ceremony
                .and_then(OpaqueToken::parse)
                .map(|handle| handle.hash())
                .ok_or_else(|| AppError::validation("ceremonyId", "is required with credential"))?;
            let proof = proof.as_ref().ok_or(AppError::InvalidMfaCode)?;
            let method = self
                .check_second_factor(&user, proof, Some(hash), "step_up", client)
                .await?;
            AuthMethods::of(&[method])
        } else {
            let user = self
                .deps
                .check_password(caller.sub, "password", password, "reauthentication", client)
                .await?;
            let mut methods = AuthMethods::password();
            if self.status(user.id).await?.enabled() {
                let proof = proof.ok_or_else(|| {
                    AppError::validation(
                        "code",
                        "is required: the account has two-step verification (or give recoveryCode, or a passkey's credential)",
                    )
                })?;
                methods = methods.with(
                    self.check_second_factor(&user, &proof, None, "step_up", client)
                        .await?,
                );
            }
            methods
        };
        let access = self.reauthenticate_session(caller, methods.clone()).await?;
        let details = json!({ "methods": methods.to_stored() });
        self.deps
            .audit
            .record(
                EventKind::Reauthenticated,
                Some(caller.sub),
                client,
                details,
            )
            .await;
        Ok(access)
    }

    async fn reauthenticate_session(
        &self,
        caller: &AccessClaims,
        methods: AuthMethods,
    ) -> Result<AccessToken, AppError> {
        self.deps
            .tokens
            .send(Reauthenticate(SessionProof {
                session_id: caller.sid,
                user_id: caller.sub,
                methods,
            }))
            .await?
    }

    /// A user's second factors, for an admin; `not_found` when there is no such user.
    pub async fn status_of_user(&self, user_id: Uuid) -> Result<(User, MfaStatus), AppError> {
        let user = self.deps.live_user(user_id).await?;
        Ok((user, self.status(user_id).await?))
    }

    /// An admin removes a user's second factors (a lost device); the owner is told by mail.
    pub async fn admin_reset(
        &self,
        admin: &User,
        user_id: Uuid,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        crate::flows::admin::refuse_self(admin, user_id, "reset the second factors of")?;
        let user = self.deps.live_user(user_id).await?;
        let store = &self.deps.store;
        if !store.remove_factors(user.id, FactorChoice::All).await? {
            return Err(AppError::NotFound);
        }
        tracing::info!(admin_id = %admin.id, %user_id, "second factors reset by an admin");
        let change = FactorChange::AdminReset(admin.id);
        self.announce(&user, change, json!({}), client).await
    }
}
