//! Passkeys (WebAuthn, webauthn-rs): registration, naming and removal, and the assertions that
//! use them: as a login's second step, to step up, and to sign in without a password. Every
//! ceremony keeps its state server-side between its two requests, single-use and expiring (the
//! library would accept one state twice).

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, Credential, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};
use webauthn_rs::Webauthn;

use crate::actors::tokens::IssuedTokens;
use crate::domain::assurance::{AuthMethod, AuthMethods};
use crate::domain::claims::AccessClaims;
use crate::domain::client::ClientContext;
use crate::domain::email::CanonicalEmail;
use crate::domain::opaque_token::{OpaqueToken, TokenHash};
use crate::domain::user::User;
use crate::error::AppError;
use crate::flows::audit::EventKind;
use crate::flows::mfa::{FactorChange, MfaService};
use crate::store::{CeremonyKind, NewCeremony, StoredPasskey};

/// Longest passkey name kept.
const MAX_NAME_CHARS: usize = 100;

/// The options a browser passes to `navigator.credentials.create/get`, and the handle of the
/// ceremony's stored state.
pub struct CeremonyStarted {
    pub ceremony_id: String,
    pub options: Value,
}

/// A registered passkey and, when it is the account's first factor, the recovery codes that
/// come with it (shown once).
pub struct PasskeyRegistered {
    pub passkey: StoredPasskey,
    pub recovery_codes: Option<Vec<String>>,
}

/// What a passwordless ceremony keeps between its two requests.
#[derive(Serialize, Deserialize)]
enum PasswordlessCeremony {
    /// The options listed the passkeys of the account asked for (the ceremony's user).
    Listed(PasskeyAuthentication),
    /// The options listed none: the answer names its account.
    AnyAccount(DiscoverableAuthentication),
    /// The options stood in for an address with no account or no passkey: nothing answers it.
    StandIn,
}

fn malformed(field: &str, e: impl std::fmt::Display) -> AppError {
    AppError::validation(field, format!("is not a WebAuthn credential: {e}"))
}

fn checked_name(name: Option<&str>) -> Result<String, AppError> {
    let name = crate::domain::user::check_display_text(name, MAX_NAME_CHARS)
        .map_err(|e| AppError::validation("name", e))?;
    Ok(name.unwrap_or_else(|| "Passkey".to_string()))
}

impl MfaService {
    fn webauthn(&self) -> Result<&Webauthn, AppError> {
        self.rules.webauthn.as_deref().ok_or(AppError::NotFound)
    }

    async fn store_ceremony(
        &self,
        hash: TokenHash,
        kind: CeremonyKind,
        user_id: Option<Uuid>,
        state: &impl serde::Serialize,
    ) -> Result<(), AppError> {
        let state = serde_json::to_string(state)
            .map_err(|e| AppError::Internal(format!("ceremony state: {e}")))?;
        self.deps
            .store
            .create_ceremony(&NewCeremony {
                hash,
                kind,
                user_id,
                state,
                ttl_seconds: self.rules.passkey_ceremony_ttl_seconds,
            })
            .await?;
        Ok(())
    }

    fn options(value: impl serde::Serialize) -> Result<Value, AppError> {
        serde_json::to_value(value).map_err(|e| AppError::Internal(format!("options: {e}")))
    }

    /// The user's passkeys, oldest first.
    pub async fn passkeys(&self, user_id: Uuid) -> Result<Vec<StoredPasskey>, AppError> {
        Ok(self.deps.store.passkeys_of(user_id).await?)
    }

    fn credentials(stored: &[StoredPasskey]) -> Vec<Passkey> {
        stored
            .iter()
            .filter_map(|p| serde_json::from_str(&p.credential).ok())
            .collect()
    }

    /// Starts registering a passkey (needs a recent sign-in); the user's passkeys are excluded,
    /// so one authenticator is not registered twice.
    pub async fn begin_passkey_registration(
        &self,
        caller: &AccessClaims,
        user: &User,
    ) -> Result<CeremonyStarted, AppError> {
        let webauthn = self.webauthn()?;
        self.deps.require_step_up(caller).await?;
        let existing = self.passkeys(user.id).await?;
        let exclude = existing
            .iter()
            .map(|p| p.credential_id.clone())
            .collect::<Vec<_>>();
        let display = user.name.as_deref().unwrap_or(&user.email);
        let (options, state) = webauthn
            .start_passkey_registration(user.id, &user.email, display, Some(exclude))
            .map_err(|e| AppError::Internal(format!("passkey registration: {e}")))?;
        let handle = OpaqueToken::generate();
        self.store_ceremony(
            handle.hash(),
            CeremonyKind::Registration,
            Some(user.id),
            &state,
        )
        .await?;
        let mut options = Self::options(options)?;
        // A passkey the authenticator can offer unasked (discoverable) signs in without an
        // address; webauthn-rs discourages one, so a security key would keep none. Preferred,
        // not required: a key with no room left still registers, as a second factor.
        options["publicKey"]["authenticatorSelection"]["residentKey"] = json!("preferred");
        Ok(CeremonyStarted {
            ceremony_id: handle.as_str().to_string(),
            options,
        })
    }

    /// Finishes a registration with the authenticator's answer.
    pub async fn finish_passkey_registration(
        &self,
        caller: &AccessClaims,
        user: &User,
        ceremony_id: &str,
        name: Option<&str>,
        credential: Value,
        client: &ClientContext,
    ) -> Result<PasskeyRegistered, AppError> {
        let webauthn = self.webauthn()?;
        self.deps.require_step_up(caller).await?;
        let name = checked_name(name)?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|e| malformed("credential", e))?;
        let state: PasskeyRegistration = self
            .take_state(ceremony_id, CeremonyKind::Registration, Some(user.id))
            .await?;
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                tracing::info!(user_id = %user.id, error = %e, "passkey registration refused");
                AppError::validation("credential", "the authenticator's answer does not verify")
            })?;
        let first_factor = !self.status(user.id).await?.enabled();
        let stored = StoredPasskey {
            id: Uuid::new_v4(),
            user_id: user.id,
            credential_id: passkey.cred_id().to_vec(),
            name,
            credential: serde_json::to_string(&passkey)
                .map_err(|e| AppError::Internal(format!("passkey: {e}")))?,
            created_at: crate::domain::user::at_store_precision(Utc::now()),
            last_used_at: None,
        };
        if !self.deps.store.add_passkey(&stored, caller.sid).await? {
            return Err(AppError::validation(
                "credential",
                "this passkey is registered already",
            ));
        }
        let recovery_codes = if first_factor {
            let (codes, hashes) = Self::fresh_recovery_codes();
            self.deps
                .store
                .replace_recovery_codes(user.id, &hashes)
                .await?;
            Some(codes)
        } else {
            None
        };
        let details = json!({ "method": "passkey", "passkeyId": stored.id });
        self.announce(user, FactorChange::Enabled, details, client)
            .await?;
        Ok(PasskeyRegistered {
            passkey: stored,
            recovery_codes,
        })
    }

    /// Renames one of the caller's passkeys.
    pub async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: Option<&str>,
    ) -> Result<StoredPasskey, AppError> {
        let name = checked_name(name)?;
        if !self.deps.store.rename_passkey(user_id, id, &name).await? {
            return Err(AppError::NotFound);
        }
        self.passkeys(user_id)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or(AppError::NotFound)
    }

    /// The state of a ceremony, used up; it must belong to `user_id` when one is given.
    async fn take_state<T: serde::de::DeserializeOwned>(
        &self,
        ceremony_id: &str,
        kind: CeremonyKind,
        user_id: Option<Uuid>,
    ) -> Result<T, AppError> {
        let stale = || AppError::validation("ceremonyId", "is unknown, used or expired");
        let handle = OpaqueToken::parse(ceremony_id).ok_or_else(stale)?;
        let ceremony = self
            .deps
            .store
            .take_ceremony(handle.hash(), kind)
            .await?
            .ok_or_else(stale)?;
        if user_id.is_some() && ceremony.user_id != user_id {
            return Err(stale());
        }
        serde_json::from_str(&ceremony.state).map_err(|_| stale())
    }

    /// Options for asserting one of `user`'s passkeys, their state stored under `hash`.
    async fn begin_assertion(
        &self,
        user: &User,
        hash: TokenHash,
        kind: CeremonyKind,
    ) -> Result<Value, AppError> {
        let webauthn = self.webauthn()?;
        let credentials = Self::credentials(&self.passkeys(user.id).await?);
        if credentials.is_empty() {
            return Err(AppError::NotFound);
        }
        let (options, state) = webauthn
            .start_passkey_authentication(&credentials)
            .map_err(|e| AppError::Internal(format!("passkey authentication: {e}")))?;
        self.store_ceremony(hash, kind, Some(user.id), &state)
            .await?;
        Self::options(options)
    }

    /// Options for a login's second step with a passkey, bound to its `mfaToken`.
    pub async fn begin_second_factor_passkey(&self, mfa_token: &str) -> Result<Value, AppError> {
        let token = OpaqueToken::parse(mfa_token).ok_or(AppError::MfaTokenInvalid)?;
        let (user, _) = self.pending_login(&token).await?;
        self.begin_assertion(&user, token.hash(), CeremonyKind::SecondFactor)
            .await
    }

    /// Options for stepping up with a passkey: the ceremony id to send back with the answer.
    pub async fn begin_step_up_passkey(&self, user: &User) -> Result<CeremonyStarted, AppError> {
        let handle = OpaqueToken::generate();
        let options = self
            .begin_assertion(user, handle.hash(), CeremonyKind::SecondFactor)
            .await?;
        Ok(CeremonyStarted {
            ceremony_id: handle.as_str().to_string(),
            options,
        })
    }

    /// Verifies an assertion against the stored state under `hash`: the passkey's counter and
    /// last use are recorded; answers which kind of passkey it was.
    pub(super) async fn verify_assertion(
        &self,
        user_id: Uuid,
        hash: TokenHash,
        credential: &Value,
    ) -> Result<Option<AuthMethod>, AppError> {
        let webauthn = self.webauthn()?;
        let Some(ceremony) = self
            .deps
            .store
            .take_ceremony(hash, CeremonyKind::SecondFactor)
            .await?
        else {
            return Ok(None);
        };
        if ceremony.user_id != Some(user_id) {
            return Ok(None);
        }
        let (Ok(state), Ok(credential)) = (
            serde_json::from_str::<PasskeyAuthentication>(&ceremony.state),
            serde_json::from_value::<PublicKeyCredential>(credential.clone()),
        ) else {
            return Ok(None);
        };
        self.finish_assertion(webauthn, user_id, &credential, &state)
            .await
    }

    async fn finish_assertion(
        &self,
        webauthn: &Webauthn,
        user_id: Uuid,
        credential: &PublicKeyCredential,
        state: &PasskeyAuthentication,
    ) -> Result<Option<AuthMethod>, AppError> {
        let Ok(result) = webauthn.finish_passkey_authentication(credential, state) else {
            return Ok(None);
        };
        let Some((entry, passkey)) = self.stored_passkey(user_id, result.cred_id()).await? else {
            return Ok(None);
        };
        self.record_use(&entry, passkey, &result).await
    }

    /// Verifies the answer to options that listed no credential against the passkey of
    /// `user_id` it names.
    async fn finish_discoverable(
        &self,
        webauthn: &Webauthn,
        user_id: Uuid,
        credential: &PublicKeyCredential,
        state: DiscoverableAuthentication,
    ) -> Result<Option<AuthMethod>, AppError> {
        let Some((entry, passkey)) = self
            .stored_passkey(user_id, credential.get_credential_id())
            .await?
        else {
            return Ok(None);
        };
        let Ok(result) =
            webauthn.finish_discoverable_authentication_v2(credential, state, &passkey)
        else {
            return Ok(None);
        };
        self.record_use(&entry, passkey, &result).await
    }

    /// The passkey of `user_id` with this credential id, as stored and as webauthn-rs reads it.
    async fn stored_passkey(
        &self,
        user_id: Uuid,
        credential_id: &[u8],
    ) -> Result<Option<(StoredPasskey, Passkey)>, AppError> {
        let Some(entry) = self
            .passkeys(user_id)
            .await?
            .into_iter()
            .find(|p| p.credential_id.as_slice() == credential_id)
        else {
            return Ok(None);
        };
        let passkey = serde_json::from_str(&entry.credential)
            .map_err(|e| AppError::Internal(format!("stored passkey: {e}")))?;
        Ok(Some((entry, passkey)))
    }

    /// A verified assertion counts only with user verification; its counter and backup state
    /// are kept and its use recorded, unless another answer of the same passkey was recorded
    /// since it was read (answers raced with one counter value): then it counts for nothing.
    /// Answers which kind of passkey it was.
    async fn record_use(
        &self,
        entry: &StoredPasskey,
        mut passkey: Passkey,
        result: &AuthenticationResult,
    ) -> Result<Option<AuthMethod>, AppError> {
        if !result.user_verified() {
            return Ok(None);
        }
        // The counter against the passkey as stored now, not as it was when the ceremony began:
        // an answer raced past by another with the same counter counts for nothing (a cloned
        // authenticator; W3C WebAuthn §7.2 step 21). Authenticators that keep no counter send 0.
        let stored_counter = Credential::from(passkey.clone()).counter;
        if (result.counter() != 0 || stored_counter != 0) && result.counter() <= stored_counter {
            tracing::warn!(passkey_id = %entry.id, "passkey counter did not move: refused");
            return Ok(None);
        }
        passkey.update_credential(result);
        let updated = serde_json::to_string(&passkey)
            .map_err(|e| AppError::Internal(format!("passkey: {e}")))?;
        let recorded = self
            .deps
            .store
            .record_passkey_use(entry.id, &entry.credential, &updated)
            .await?;
        if !recorded {
            tracing::warn!(passkey_id = %entry.id, "passkey answers raced: one refused");
            return Ok(None);
        }
        Ok(Some(if result.backup_eligible() {
            AuthMethod::SyncedPasskey
        } else {
            AuthMethod::DevicePasskey
        }))
    }

    /// Passwordless sign-in, first step. Without `email`: options that list no credential, so
    /// the authenticator offers the passkeys it holds for this site and its answer names the
    /// account (its user handle); nothing in them depends on who asks. With `email`: options
    /// for the account behind it. An address with no account or no passkey gets options of the
    /// same shape (one credential id derived from the address), and its ceremony can only fail.
    pub async fn begin_passwordless(
        &self,
        email: Option<&str>,
    ) -> Result<CeremonyStarted, AppError> {
        let webauthn = self.webauthn()?;
        let handle = OpaqueToken::generate();
        let Some(email) = email else {
            let (options, state) = webauthn
                .start_discoverable_authentication()
                .map_err(|e| AppError::Internal(format!("passkey authentication: {e}")))?;
            let ceremony = PasswordlessCeremony::AnyAccount(state);
            self.store_ceremony(handle.hash(), CeremonyKind::Passwordless, None, &ceremony)
                .await?;
            return Ok(CeremonyStarted {
                ceremony_id: handle.as_str().to_string(),
                options: Self::passwordless_options(options, None)?,
            });
        };
        let canonical = CanonicalEmail::of(email);
        let account = self.deps.store.user_by_email(&canonical).await?;
        // An unknown address runs the same lookup (for nobody): its time must not tell.
        let owner = account
            .as_ref()
            .map_or(Uuid::nil(), |account| account.user.id);
        let credentials = Self::credentials(&self.passkeys(owner).await?);
        let options = if let (Some(account), false) = (&account, credentials.is_empty()) {
            let (options, state) = webauthn
                .start_passkey_authentication(&credentials)
                .map_err(|e| AppError::Internal(format!("passkey authentication: {e}")))?;
            let ceremony = PasswordlessCeremony::Listed(state);
            self.store_ceremony(
                handle.hash(),
                CeremonyKind::Passwordless,
                Some(account.user.id),
                &ceremony,
            )
            .await?;
            Self::options(options)?
        } else {
            let (options, _) = webauthn
                .start_discoverable_authentication()
                .map_err(|e| AppError::Internal(format!("passkey authentication: {e}")))?;
            self.store_ceremony(
                handle.hash(),
                CeremonyKind::Passwordless,
                None,
                &PasswordlessCeremony::StandIn,
            )
            .await?;
            let decoy = self.decoy_credential_id(&canonical);
            let mut options = Self::passwordless_options(options, Some(decoy))?;
            // What a real account's options do not carry, the stand-in does not either.
            if let Some(fields) = options["publicKey"].as_object_mut() {
                fields.remove("extensions");
            }
            options
        };
        Ok(CeremonyStarted {
            ceremony_id: handle.as_str().to_string(),
            options,
        })
    }

    /// Discoverable-credential options as a page passes them to `navigator.credentials.get`,
    /// listing `allowed` when given. webauthn-rs asks for conditional mediation (the browser's
    /// autofill), which leaves a call from a sign-in button waiting forever: the page chooses.
    fn passwordless_options(
        options: RequestChallengeResponse,
        allowed: Option<String>,
    ) -> Result<Value, AppError> {
        let mut options = Self::options(options)?;
        if let Some(fields) = options.as_object_mut() {
            fields.remove("mediation");
        }
        let allowed = allowed.map(|id| json!({ "type": "public-key", "id": id }));
        options["publicKey"]["allowCredentials"] = json!(Vec::from_iter(allowed));
        options["publicKey"]["userVerification"] = json!("required");
        Ok(options)
    }

    /// A stable, secret-derived credential id for an address without passkeys (base64url).
    fn decoy_credential_id(&self, email: &CanonicalEmail) -> String {
        use base64::Engine;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.rules.decoy_key.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(b"passkey-decoy:");
        mac.update(email.as_str().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Passwordless sign-in, second step: a verified assertion opens a session at level 2.
    pub async fn finish_passwordless(
        &self,
        ceremony_id: &str,
        credential: Value,
        client: &ClientContext,
    ) -> Result<(User, IssuedTokens), AppError> {
        let webauthn = self.webauthn()?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential).map_err(|e| malformed("credential", e))?;
        let refused = || AppError::InvalidCredentials;
        let handle = OpaqueToken::parse(ceremony_id).ok_or_else(refused)?;
        let ceremony = self
            .deps
            .store
            .take_ceremony(handle.hash(), CeremonyKind::Passwordless)
            .await?
            .ok_or_else(refused)?;
        let state: PasswordlessCeremony =
            serde_json::from_str(&ceremony.state).map_err(|_| refused())?;
        // Whose passkey it must be: the account the options listed, or the one the
        // authenticator names (its user handle, checked against that account's passkeys).
        let user_id = match (&state, ceremony.user_id) {
            (PasswordlessCeremony::Listed(_), Some(user_id)) => user_id,
            (PasswordlessCeremony::AnyAccount(_), None) => {
                webauthn
                    .identify_discoverable_authentication(&credential)
                    .map_err(|_| refused())?
                    .0
            }
            _ => return Err(refused()),
        };
        // Read before the passkey is: a passkey removed by an ending (the owner's recovery of
        // an account set up by someone else) after this read opens no session after it.
        let account = self
            .deps
            .store
            .user_credentials_by_id(user_id)
            .await?
            .filter(|account| !account.user.locked)
            .ok_or_else(refused)?;
        let (user, epoch) = (account.user, account.session_epoch);
        let verified = match state {
            PasswordlessCeremony::Listed(state) => {
                self.finish_assertion(webauthn, user.id, &credential, &state)
                    .await?
            }
            PasswordlessCeremony::AnyAccount(state) => {
                self.finish_discoverable(webauthn, user.id, &credential, state)
                    .await?
            }
            PasswordlessCeremony::StandIn => None,
        };
        let Some(method) = verified else {
            crate::metrics::mfa_outcome("passwordless", "failed");
            let details = json!({ "reason": "passkey_refused" });
            self.deps
                .audit
                .record(EventKind::LoginFailed, Some(user.id), client, details)
                .await;
            return Err(refused());
        };
        crate::metrics::mfa_outcome("passwordless", "passed");
        let methods = AuthMethods::of(&[method]);
        let tokens = self
            .deps
            .start_session_since(&user, client, methods, epoch, refused())
            .await?;
        let details = json!({ "sessionId": tokens.session_id, "method": method.as_str() });
        self.deps
            .audit
            .record(EventKind::LoginSucceeded, Some(user.id), client, details)
            .await;
        Ok((user, tokens))
    }
}
