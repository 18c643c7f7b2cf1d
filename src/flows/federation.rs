//! Signing in through another provider: the browser's round trip (start, callback), native apps'
//! ID tokens, and the identities linked to an account. The rule of which account an identity
//! opens is `domain::federation::decide`; no account is ever linked to an identity silently.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;
use uuid::Uuid;

use crate::actors::tokens::IssuedTokens;
use crate::config::NativeNonces;
use crate::domain::assurance::{AuthMethod, AuthMethods};
use crate::domain::claims::{AccessClaims, Caller};
use crate::domain::client::ClientContext;
use crate::domain::email::{CanonicalEmail, EmailAddress};
use crate::domain::federation::{
    decide, IdentityDecision, IdentityFacts, IdentityRefusal, ReturnUrls,
};
use crate::domain::messages::MessageKind;
use crate::domain::opaque_token::{OpaqueToken, TokenHash};
use crate::domain::password::NO_PASSWORD;
use crate::domain::user::{Role, User};
use crate::error::{AppError, FederationFailure};
use crate::federation::{Provider, ProviderError, Providers, VouchedIdentity};
use crate::flows::audit::EventKind;
use crate::flows::deps::FlowDeps;
use crate::flows::mfa::{AfterFirstFactor, MfaChallengeIssued, MfaService};
use crate::store::{
    CeremonyKind, LinkedIdentity, NewCeremony, NewIdentity, NewUser, SessionEpoch, StoreError,
    Unlinked,
};

/// The configured rules of signing in elsewhere.
pub struct FederationRules {
    pub return_urls: ReturnUrls,
    pub allow_signup: bool,
    pub flow_ttl_seconds: u64,
    pub native_nonces: NativeNonces,
    pub require_email_verification: bool,
}

/// A nonce for a native app's ID token, and how long it waits for it.
pub struct IssuedNonce {
    pub nonce: String,
    pub expires_in: u64,
}

/// A started round trip: where to send the browser, and the value of the cookie that ties the
/// callback to this browser. No `Debug`: both are secrets of the flow.
pub struct StartedFlow {
    pub authorization_url: String,
    pub browser_key: String,
}

/// How a sign-in through a provider ended.
pub enum FederatedOutcome {
    SignedIn(User, IssuedTokens),
    /// The account has a second factor: `POST /auth/mfa/verify` completes the sign-in.
    MfaRequired(MfaChallengeIssued),
    /// A new account whose address the provider did not verify, while verification is
    /// required: a mail is on its way, no session yet.
    VerificationSent,
    /// An account holds the address: it signs in (its own way), then links with `link_token`.
    LinkRequired {
        link_token: String,
        email: String,
        /// The provider's name, for the page's "link your <provider> account?".
        provider: String,
    },
    /// A signed-in user's round trip to link the identity: done.
    Linked,
}

/// The browser's callback: where to send it back, and how the sign-in ended.
pub struct CallbackResult {
    pub return_to: Url,
    pub outcome: Result<FederatedOutcome, AppError>,
}

/// What a callback presents: the query (or Apple's form) and the browser's cookie.
pub struct Callback<'a> {
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    /// The provider's `error` (the user said no).
    pub error: Option<&'a str>,
    pub browser_key: Option<&'a str>,
    /// The key a link offer made to this browser is bound to (its `oauth_link` cookie's).
    pub link_key: Option<&'a str>,
}

/// The round trip's state, kept server-side under the hash of `state` until the callback.
#[derive(Serialize, Deserialize)]
struct RoundTrip {
    provider: String,
    /// SHA-256 of the browser cookie, hex.
    browser: String,
    pkce_verifier: String,
    nonce: String,
    return_to: String,
    /// When linking: the session that asked, which must still live when the browser is back.
    #[serde(default)]
    session_id: Option<Uuid>,
}

/// An identity waiting for the account that holds its address to sign in and link it.
#[derive(Serialize, Deserialize)]
struct PendingLink {
    provider: String,
    subject: String,
    email: String,
    /// For an offer made to a browser (a round trip's callback, or a page's token exchange): the
    /// hash (hex) of that browser's link key, which must come back (the `oauth_link` cookie)
    /// with the link. Someone else's offer, planted in a victim's page as a crafted return URL,
    /// then links nothing. `None` for a native app's offer, answered in the body of the app's
    /// own request: taken only by a request that no page sent (no `Origin`), so it cannot be
    /// planted in a page either.
    #[serde(default)]
    browser: Option<String>,
}

/// A provider as frontends list it.
pub struct ProviderInfo {
    pub name: String,
    pub display_name: String,
    pub kind: &'static str,
}

#[derive(Clone)]
pub struct FederationService {
    deps: FlowDeps,
    mfa: MfaService,
    providers: Arc<Providers>,
    rules: Arc<FederationRules>,
}

fn hex(hash: &TokenHash) -> String {
    hash.as_slice().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a link offer keeps of the browser key it is bound to: its hash, hex.
fn link_binding(link_key: Option<&str>) -> Option<String> {
    link_key
        .and_then(OpaqueToken::parse)
        .map(|key| hex(&key.hash()))
}

fn from_provider(e: ProviderError) -> AppError {
    match e {
        ProviderError::Unavailable(_) => {
            AppError::Federation(FederationFailure::ProviderUnavailable)
        }
        ProviderError::Refused(_) => AppError::Federation(FederationFailure::Refused),
        ProviderError::Unsupported => {
            AppError::validation("idToken", "this provider issues no ID tokens")
        }
    }
}

impl FederationService {
    pub fn new(
        deps: FlowDeps,
        mfa: MfaService,
        providers: Arc<Providers>,
        rules: Arc<FederationRules>,
    ) -> Self {
        FederationService {
            deps,
            mfa,
            providers,
            rules,
        }
    }

    /// The configured providers, for a sign-in page's buttons.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.providers
            .all()
            .map(|provider| ProviderInfo {
                name: provider.name.clone(),
                display_name: provider.display_name.clone(),
                kind: provider.kind_name(),
            })
            .collect()
    }

    /// Where a browser may return: `return_to` when it is allowed (without its fragment), the
    /// default when absent.
    pub fn return_url(&self, return_to: Option<&str>) -> Result<Url, AppError> {
        self.rules
            .return_urls
            .check(return_to)
            .ok_or_else(|| AppError::validation("returnTo", "is not an allowed return URL"))
    }

    fn provider(&self, name: &str) -> Result<Arc<Provider>, AppError> {
        self.providers.get(name).ok_or(AppError::NotFound)
    }

    /// Starts a round trip to `provider`; the browser comes back to `return_to` (an allowed URL;
    /// the default when absent). With `linking`, the signed-in caller links the identity instead
    /// of signing in (a sensitive action: it needs a recent sign-in).
    pub async fn start(
        &self,
        provider: &str,
        return_to: Option<&str>,
        linking: Option<&AccessClaims>,
    ) -> Result<StartedFlow, AppError> {
        let provider = self.provider(provider)?;
        let return_to = self.return_url(return_to)?;
        if let Some(caller) = linking {
            self.deps.require_step_up(caller).await?;
        }
        let state = OpaqueToken::generate();
        let browser = OpaqueToken::generate();
        let authorization = provider
            .authorize(state.as_str())
            .await
            .map_err(from_provider)?;
        let trip = RoundTrip {
            provider: provider.name.clone(),
            browser: hex(&browser.hash()),
            pkce_verifier: authorization.pkce_verifier,
            nonce: authorization.nonce,
            return_to: return_to.to_string(),
            session_id: linking.map(|caller| caller.sid),
        };
        self.deps
            .store
            .create_ceremony(&NewCeremony {
                hash: state.hash(),
                kind: CeremonyKind::OAuthCallback,
                user_id: linking.map(|caller| caller.sub),
                state: serde_json::to_string(&trip)
                    .map_err(|e| AppError::Internal(e.to_string()))?,
                ttl_seconds: self.rules.flow_ttl_seconds,
            })
            .await?;
        Ok(StartedFlow {
            authorization_url: authorization.url,
            browser_key: browser.as_str().to_string(),
        })
    }

    /// The provider sent the browser back. Whatever happens, the answer says where to send it:
    /// the flow's return URL, or the default one when the flow cannot be read.
    #[tracing::instrument(skip_all, fields(provider = provider))]
    pub async fn callback(
        &self,
        provider: &str,
        callback: Callback<'_>,
        client: &ClientContext,
    ) -> CallbackResult {
        let mut return_to = self.rules.return_urls.default_url().clone();
        let outcome = self
            .finish_round_trip(provider, callback, &mut return_to, client)
            .await;
        if let Err(e) = &outcome {
            crate::metrics::federation_outcome("callback", e.code());
            tracing::info!(code = e.code(), "sign-in through a provider failed");
        }
        CallbackResult { return_to, outcome }
    }

    async fn finish_round_trip(
        &self,
        provider_name: &str,
        callback: Callback<'_>,
        return_to: &mut Url,
        client: &ClientContext,
    ) -> Result<FederatedOutcome, AppError> {
        let invalid = || AppError::Federation(FederationFailure::StateInvalid);
        let state = callback
            .state
            .and_then(OpaqueToken::parse)
            .ok_or_else(invalid)?;
        let ceremony = self
            .deps
            .store
            .take_ceremony(state.hash(), CeremonyKind::OAuthCallback)
            .await?
            .ok_or_else(invalid)?;
        let trip: RoundTrip = serde_json::from_str(&ceremony.state).map_err(|_| invalid())?;
        if let Ok(url) = Url::parse(&trip.return_to) {
            *return_to = url;
        }
        // The callback must come back to the browser that started it (no login CSRF: someone
        // else's code cannot be planted in this browser) and for the provider it went to.
        let same_browser = callback
            .browser_key
            .and_then(OpaqueToken::parse)
            .is_some_and(|key| hex(&key.hash()) == trip.browser);
        if !same_browser || trip.provider != provider_name {
            return Err(invalid());
        }
        let provider = self.provider(provider_name)?;
        if callback.error.is_some() {
            return Err(AppError::Federation(FederationFailure::Cancelled));
        }
        let code = callback
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(invalid)?;
        let identity = provider
            .redeem(code, &trip.pkce_verifier, &trip.nonce)
            .await
            .map_err(|e| self.refused(&provider, e, client))?;
        let Some(user_id) = ceremony.user_id else {
            let browser = link_binding(callback.link_key);
            return self
                .sign_in(&provider, identity, browser.as_deref(), client)
                .await;
        };
        // A link is the asking session's: once it has ended (signed out everywhere, a reset,
        // a lock, the account deleted), the round trip links nothing.
        let user = self.deps.store.user_by_id(user_id).await?;
        let session_lives = match (&user, trip.session_id) {
            (Some(user), Some(session_id)) => self.deps.session_lives(user, session_id).await?,
            _ => false,
        };
        let session_id = trip.session_id.filter(|_| session_lives);
        let Some(session_id) = session_id else {
            tracing::info!(%user_id, "identity link refused: the session that asked has ended");
            return Err(invalid());
        };
        match self
            .link(&provider, &identity, user_id, session_id, client)
            .await
        {
            Err(AppError::TokenInvalid) => {
                tracing::info!(%user_id, "identity link refused: the session that asked has ended");
                Err(invalid())
            }
            linked => linked,
        }
    }

    /// A nonce for the ID token a native app is about to ask `provider` for: single-use, for
    /// that provider, expiring with `oauth.flow_ttl_seconds`.
    pub async fn issue_native_nonce(&self, provider: &str) -> Result<IssuedNonce, AppError> {
        let provider = self.provider(provider)?;
        if !provider.issues_id_tokens() {
            return Err(AppError::validation(
                "provider",
                "this provider issues no ID tokens",
            ));
        }
        let nonce = OpaqueToken::generate();
        self.deps
            .store
            .create_ceremony(&NewCeremony {
                hash: nonce.hash(),
                kind: CeremonyKind::NativeNonce,
                user_id: None,
                state: provider.name.clone(),
                ttl_seconds: self.rules.flow_ttl_seconds,
            })
            .await?;
        Ok(IssuedNonce {
            nonce: nonce.as_str().to_string(),
            expires_in: self.rules.flow_ttl_seconds,
        })
    }

    /// Uses up `nonce` if authd issued it for `provider` and it is unexpired; with
    /// `oauth.native_nonces = "any"`, any nonce passes.
    async fn spend_native_nonce(&self, provider: &Provider, nonce: &str) -> Result<bool, AppError> {
        if self.rules.native_nonces == NativeNonces::Any {
            return Ok(true);
        }
        let Some(presented) = OpaqueToken::parse(nonce) else {
            return Ok(false);
        };
        let taken = self
            .deps
            .store
            .take_ceremony(presented.hash(), CeremonyKind::NativeNonce)
            .await?;
        Ok(taken.is_some_and(|ceremony| ceremony.state == provider.name))
    }

    /// A native app's ID token from the provider (Sign in with Apple, Google Sign-In), with the
    /// nonce it asked for (one authd issued, unless `oauth.native_nonces = "any"`): each token
    /// and each nonce is accepted once.
    #[tracing::instrument(skip_all, fields(provider = provider))]
    /// `link_key`: for a page's request, the key a link offer is bound to (its `oauth_link`
    /// cookie's); `None` for an app's, whose offer only an app can take.
    pub async fn exchange_id_token(
        &self,
        provider: &str,
        id_token: &str,
        nonce: &str,
        link_key: Option<&str>,
        client: &ClientContext,
    ) -> Result<FederatedOutcome, AppError> {
        let provider = self.provider(provider)?;
        if !provider.issues_id_tokens() {
            return Err(from_provider(ProviderError::Unsupported));
        }
        // The token first (a provider that cannot be reached costs the app no nonce), then the
        // nonce, used up by one conditional delete: a token checks out once whatever runs beside.
        let (identity, expires_at) = provider
            .verify_id_token(id_token, nonce)
            .await
            .map_err(|e| self.refused(&provider, e, client))?;
        if !self.spend_native_nonce(&provider, nonce).await? {
            let e = ProviderError::Refused("the nonce is not one authd issued, or used".into());
            return Err(self.refused(&provider, e, client));
        }
        let lifetime = expires_at
            .saturating_sub(chrono::Utc::now().timestamp())
            .max(1);
        let first_use = self
            .deps
            .store
            .create_ceremony(&NewCeremony {
                hash: crate::domain::federation::id_token_spend_key(id_token),
                kind: CeremonyKind::SpentIdToken,
                user_id: None,
                state: String::new(),
                ttl_seconds: u64::try_from(lifetime).unwrap_or(1),
            })
            .await?;
        if !first_use {
            let e = ProviderError::Refused("the ID token was used before".into());
            return Err(self.refused(&provider, e, client));
        }
        let browser = link_binding(link_key);
        let outcome = self
            .sign_in(&provider, identity, browser.as_deref(), client)
            .await;
        if let Err(e) = &outcome {
            crate::metrics::federation_outcome("id_token", e.code());
        }
        outcome
    }

    /// Maps a provider's failure, auditing a refusal (an attack, or a misconfiguration).
    fn refused(&self, provider: &Provider, e: ProviderError, client: &ClientContext) -> AppError {
        if let ProviderError::Refused(reason) = &e {
            tracing::info!(provider = %provider.name, reason, "provider answer refused");
            let audit = self.deps.audit.clone();
            let details = json!({ "provider": provider.name, "reason": "refused" });
            let client = client.clone();
            actix::spawn(async move {
                audit
                    .record(EventKind::FederatedLoginFailed, None, &client, details)
                    .await;
            });
        } else {
            tracing::warn!(provider = %provider.name, error = %e, "provider unavailable");
        }
        from_provider(e)
    }

    /// Which account the identity opens (`domain::federation::decide`), and the session.
    async fn sign_in(
        &self,
        provider: &Provider,
        identity: VouchedIdentity,
        browser: Option<&str>,
        client: &ClientContext,
    ) -> Result<FederatedOutcome, AppError> {
        let store = &self.deps.store;
        let owner = store
            .identity_owner(&provider.name, &identity.subject)
            .await?;
        let email = identity
            .email
            .as_deref()
            .and_then(|email| EmailAddress::parse(email).ok());
        let account = match (&owner, &email) {
            (None, Some(email)) => store.user_by_email(email.canonical()).await?,
            _ => None,
        };
        let decision = decide(IdentityFacts {
            linked_to: owner.as_ref().map(|(user, _)| user.id),
            has_email: email.is_some(),
            email_verified: identity.email_verified,
            account_with_email: account.as_ref().map(|account| account.user.id),
            allow_signup: self.rules.allow_signup,
        });
        let refusal = match decision {
            IdentityDecision::SignIn(_) => {
                let (user, epoch) =
                    owner.ok_or(AppError::Internal("the identity's owner vanished".into()))?;
                store
                    .record_identity_use(&provider.name, &identity.subject)
                    .await?;
                return self.open_session(provider, user, Some(epoch), client).await;
            }
            IdentityDecision::LinkRequired(account_id) => {
                let email = email.map(EmailAddress::into_string).unwrap_or_default();
                return self
                    .offer_link(provider, &identity, account_id, email, browser)
                    .await;
            }
            IdentityDecision::CreateAccount => match email {
                Some(email) => return self.sign_up(provider, identity, email, client).await,
                None => FederationFailure::NoEmail,
            },
            IdentityDecision::Refuse(IdentityRefusal::NoEmail) => FederationFailure::NoEmail,
            IdentityDecision::Refuse(IdentityRefusal::SignupClosed) => {
                FederationFailure::SignupClosed
            }
            IdentityDecision::Refuse(IdentityRefusal::UnverifiedEmailTaken) => {
                FederationFailure::UnverifiedEmailTaken
            }
        };
        let details = json!({ "provider": provider.name, "reason": refusal.code() });
        let user_id = account.as_ref().map(|account| account.user.id);
        // Where signup hides which addresses have accounts, so does this: the answer is that of
        // a new unverified account, and the owner hears of the attempt.
        if let (FederationFailure::UnverifiedEmailTaken, true, Some(owner)) =
            (refusal, self.rules.require_email_verification, &account)
        {
            self.deps
                .tell_account_exists_later(CanonicalEmail::of(&owner.user.email));
            self.deps
                .audit
                .record(EventKind::FederatedLoginFailed, user_id, client, details)
                .await;
            return Ok(FederatedOutcome::VerificationSent);
        }
        self.deps
            .audit
            .record(EventKind::FederatedLoginFailed, user_id, client, details)
            .await;
        Err(AppError::Federation(refusal))
    }

    /// Keeps the identity for the account holding its address, until that account signs in and
    /// links it with the answered token.
    async fn offer_link(
        &self,
        provider: &Provider,
        identity: &VouchedIdentity,
        account_id: Uuid,
        email: String,
        browser: Option<&str>,
    ) -> Result<FederatedOutcome, AppError> {
        let token = OpaqueToken::generate();
        let pending = PendingLink {
            provider: provider.name.clone(),
            subject: identity.subject.clone(),
            email: email.clone(),
            browser: browser.map(str::to_string),
        };
        self.deps
            .store
            .create_ceremony(&NewCeremony {
                hash: token.hash_for(account_id.as_bytes()),
                kind: CeremonyKind::IdentityLink,
                user_id: Some(account_id),
                state: serde_json::to_string(&pending)
                    .map_err(|e| AppError::Internal(e.to_string()))?,
                ttl_seconds: self.rules.flow_ttl_seconds,
            })
            .await?;
        tracing::info!(provider = %provider.name, "identity's address has an account: link offered");
        Ok(FederatedOutcome::LinkRequired {
            link_token: token.as_str().to_string(),
            email,
            provider: provider.name.clone(),
        })
    }

    /// A new account for the identity, linked to it in the same transaction. It has no password
    /// (it signs in through the provider, or sets one with "forgot password").
    async fn sign_up(
        &self,
        provider: &Provider,
        identity: VouchedIdentity,
        email: EmailAddress,
        client: &ClientContext,
    ) -> Result<FederatedOutcome, AppError> {
        let name = identity
            .name
            .as_deref()
            .and_then(|name| crate::domain::user::check_name(Some(name)).ok().flatten());
        // The lookup took any address an account could hold; a new account needs one mail reaches.
        let email = EmailAddress::parse_new(email.as_str())
            .map_err(|_| AppError::Federation(FederationFailure::NoEmail))?;
        if self.deps.address_retired(email.canonical()).await? {
            let details = json!({ "provider": provider.name, "reason": "email_taken" });
            self.deps
                .audit
                .record(EventKind::FederatedLoginFailed, None, client, details)
                .await;
            // Where signup hides which addresses are taken, so does this (as for a live account).
            if !identity.email_verified && self.rules.require_email_verification {
                return Ok(FederatedOutcome::VerificationSent);
            }
            return Err(AppError::EmailTaken);
        }
        let mut account = NewUser::new(email.clone(), name, NO_PASSWORD.to_string(), Role::User);
        account.email_verified = identity.email_verified;
        account.identity = Some(NewIdentity {
            provider: provider.name.clone(),
            subject: identity.subject.clone(),
            user_id: account.id,
            email: Some(email.into_string()),
        });
        let provider_name = Some(provider.display_name.as_str());
        let created = self.deps.create_account(account, provider_name).await;
        let user = match created {
            Ok(user) => user,
            // A sign-in racing this one made the account first: the identity is linked now.
            Err(StoreError::EmailTaken) => {
                return Err(AppError::Federation(FederationFailure::IdentityTaken))
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(user_id = %user.id, provider = %provider.name, "signed up through a provider");
        let details = json!({ "provider": provider.name, "invited": false, "role": "user" });
        self.deps
            .audit
            .record(EventKind::Signup, Some(user.id), client, details)
            .await;
        if !user.email_verified && self.rules.require_email_verification {
            return Ok(FederatedOutcome::VerificationSent);
        }
        self.open_session(provider, user, None, client).await
    }

    /// The session of an account that signed in through `provider`: refused like a login for a
    /// locked or (when required) unverified account, held at the second step when the account
    /// has a factor. `epoch`: the [`SessionEpoch`] read with the identity's link (`None` for an
    /// account made just now).
    async fn open_session(
        &self,
        provider: &Provider,
        user: User,
        epoch: Option<SessionEpoch>,
        client: &ClientContext,
    ) -> Result<FederatedOutcome, AppError> {
        let details = json!({ "provider": provider.name });
        let verification = self.rules.require_email_verification;
        self.deps
            .refuse_locked_or_unverified(&user, verification, details, client)
            .await?;
        let methods = AuthMethods::of(&[AuthMethod::Federated]);
        // The link is withdrawn when the mailbox's owner recovers an account someone else set
        // up: a session from a link read before that ending is refused.
        let refused = AppError::InvalidCredentials;
        let next = self
            .mfa
            .after_first_factor(&user, methods, epoch, refused, client);
        let tokens = match next.await? {
            AfterFirstFactor::SignedIn(tokens) => tokens,
            AfterFirstFactor::SecondStep(challenge) => {
                tracing::info!(user_id = %user.id, "provider sign-in; second factor required");
                return Ok(FederatedOutcome::MfaRequired(challenge));
            }
        };
        tracing::info!(user_id = %user.id, provider = %provider.name, "logged in through a provider");
        let details = json!({ "sessionId": tokens.session_id, "provider": provider.name });
        self.deps
            .audit
            .record(EventKind::LoginSucceeded, Some(user.id), client, details)
            .await;
        crate::metrics::federation_outcome("sign_in", "passed");
        Ok(FederatedOutcome::SignedIn(user, tokens))
    }

    /// Links the identity to `user_id`, who asked for it while signed in (in session
    /// `session_id`, which must still live as the link is written).
    async fn link(
        &self,
        provider: &Provider,
        identity: &VouchedIdentity,
        user_id: Uuid,
        session_id: Uuid,
        client: &ClientContext,
    ) -> Result<FederatedOutcome, AppError> {
        let store = &self.deps.store;
        if let Some((owner, _)) = store
            .identity_owner(&provider.name, &identity.subject)
            .await?
        {
            if owner.id == user_id {
                return Ok(FederatedOutcome::Linked);
            }
            return Err(AppError::Federation(FederationFailure::IdentityTaken));
        }
        let linked = store
            .link_identity(
                &NewIdentity {
                    provider: provider.name.clone(),
                    subject: identity.subject.clone(),
                    user_id,
                    email: identity.email.clone(),
                },
                session_id,
            )
            .await?;
        if !linked {
            return Err(AppError::Federation(FederationFailure::IdentityTaken));
        }
        let details = json!({ "provider": provider.name });
        self.deps
            .audit
            .record(EventKind::IdentityLinked, Some(user_id), client, details)
            .await;
        // A new way in: the owner hears of it, as of a new second factor (ASVS 2.2.3). The link
        // is made either way: a notice that could not be queued is logged, not the link's error.
        if let Some(user) = store.user_by_id(user_id).await? {
            let kind = MessageKind::IdentityLinked;
            let (name, about) = (user.name_for_mail(), provider.display_name.as_str());
            let notice = self
                .deps
                .outbox
                .send_notice_about(kind, &user.email, name, about);
            if let Err(e) = notice.await {
                tracing::error!(%user_id, error = %e, "the notice of a linked identity was not queued");
            }
        }
        Ok(FederatedOutcome::Linked)
    }

    /// The signed-in owner of an address links the identity that was offered for it
    /// (`linkToken`). Only the account the offer was made for can take it, or use it up; an
    /// offer made to a browser, only with that browser's link key (`browser_key`); a native
    /// app's, only from a request no page sent (`from_page`: it carries `Origin`, which every
    /// browser sends with a page's POST).
    pub async fn accept_link(
        &self,
        caller: &Caller,
        link_token: &str,
        browser_key: Option<&str>,
        from_page: bool,
        client: &ClientContext,
    ) -> Result<LinkedIdentity, AppError> {
        self.deps.require_step_up(&caller.claims).await?;
        let invalid = || AppError::validation("linkToken", "is invalid, used or expired");
        let token = OpaqueToken::parse(link_token).ok_or_else(invalid)?;
        // Stored for the account it was offered to: another caller's attempt finds nothing and
        // uses nothing up.
        let hash = token.hash_for(caller.user.id.as_bytes());
        let ceremony = self
            .deps
            .store
            .take_ceremony(hash, CeremonyKind::IdentityLink)
            .await?
            .ok_or_else(invalid)?;
        if ceremony.user_id != Some(caller.user.id) {
            return Err(invalid());
        }
        let pending: PendingLink = serde_json::from_str(&ceremony.state).map_err(|_| invalid())?;
        let taken_where_offered = match &pending.browser {
            Some(expected) => link_binding(browser_key).is_some_and(|key| key == *expected),
            None => !from_page,
        };
        if !taken_where_offered {
            tracing::info!(user_id = %caller.user.id, "identity link refused: not where the offer was made");
            return Err(invalid());
        }
        let provider = self.provider(&pending.provider)?;
        let identity = VouchedIdentity {
            subject: pending.subject,
            email: Some(pending.email),
            email_verified: true,
            name: None,
        };
        let (user_id, session_id) = (caller.user.id, caller.claims.sid);
        self.link(&provider, &identity, user_id, session_id, client)
            .await?;
        self.deps
            .store
            .identities_of(caller.user.id)
            .await?
            .into_iter()
            .find(|linked| linked.provider == provider.name)
            .ok_or(AppError::Internal("a linked identity vanished".into()))
    }

    pub async fn identities(&self, user_id: Uuid) -> Result<Vec<LinkedIdentity>, AppError> {
        Ok(self.deps.store.identities_of(user_id).await?)
    }

    /// Unlinks the caller's identity at `provider`, unless it is the account's last way to sign
    /// in (no password, no passkey, no other identity).
    pub async fn unlink(
        &self,
        caller: &AccessClaims,
        provider: &str,
        client: &ClientContext,
    ) -> Result<(), AppError> {
        self.deps.require_step_up(caller).await?;
        match self
            .deps
            .store
            .unlink_identity(caller.sub, provider)
            .await?
        {
            Unlinked::Removed => {}
            Unlinked::NotLinked => return Err(AppError::NotFound),
            Unlinked::LastWayIn => return Err(AppError::Federation(FederationFailure::LastWayIn)),
        }
        let details = json!({ "provider": provider });
        self.deps
            .audit
            .record(
                EventKind::IdentityUnlinked,
                Some(caller.sub),
                client,
                details,
            )
            .await;
        Ok(())
    }
}
