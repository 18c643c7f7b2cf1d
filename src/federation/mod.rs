//! Talking to other identity providers: OpenID Connect (any issuer, Google, Apple) through
//! `openidconnect`, GitHub's plain OAuth 2.0 through `oauth2`. Each provider builds its
//! authorization URL, redeems a callback's code and, for OpenID Connect, verifies an ID token a
//! native app got itself. Every request goes through one HTTP client that follows no redirect (a
//! provider's answer must not send authd anywhere else) and gives up after
//! `oauth.provider_timeout_ms`.
//!
//! A provider's discovery document and keys are cached for an hour and fetched again when an ID
//! token names a key they do not hold (a rotation), at most once a minute. The cache is shared
//! state behind a lock rather than an actor: it is read on a few requests, written rarely, and
//! needs no ordering of its own.

mod github;
mod oidc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openidconnect::reqwest;

use crate::config::{OAuthProviderKind, OAuthProviderSettings, Settings};

/// What a provider vouched for about the user who signed in there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VouchedIdentity {
    /// The provider's stable id of the user.
    pub subject: String,
    pub email: Option<String>,
    /// The provider says the address is the user's (verified by it).
    pub email_verified: bool,
    pub name: Option<String>,
}

/// An identity authd can keep: a subject of 1 to 255 characters (what the store holds; an empty
/// one would make every user of a faulty provider one identity), and neither it nor the address
/// holding a control character (NUL, which PostgreSQL refuses, among them: a 500 otherwise, and
/// backends that disagree).
fn checked(identity: VouchedIdentity) -> Result<VouchedIdentity, ProviderError> {
    crate::domain::federation::check_subject(&identity.subject).map_err(ProviderError::Refused)?;
    if identity
        .email
        .as_deref()
        .is_some_and(|email| email.chars().any(char::is_control))
    {
        return Err(ProviderError::Refused(
            "the address holds a control character".into(),
        ));
    }
    Ok(identity)
}

/// The browser's trip to the provider: where to send it, and what the callback needs to check.
/// No `Debug`: it holds the PKCE verifier.
pub struct Authorization {
    pub url: String,
    pub pkce_verifier: String,
    pub nonce: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached, or answered something that is not its protocol.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// What came back does not check out: a refused code, a token with the wrong issuer,
    /// audience, nonce, signature or lifetime.
    #[error("refused: {0}")]
    Refused(String),
    /// This provider cannot do that (GitHub has no ID tokens).
    #[error("not supported by this provider")]
    Unsupported,
}

/// A token endpoint's failure: its own refusal (a used or foreign code) or no usable answer.
fn token_endpoint_error<RE, T>(e: oauth2::RequestTokenError<RE, T>) -> ProviderError
where
    RE: std::error::Error + 'static,
    T: oauth2::ErrorResponse + 'static,
{
    match e {
        oauth2::RequestTokenError::ServerResponse(answer) => {
            ProviderError::Refused(format!("token endpoint: {answer}"))
        }
        other => ProviderError::Unavailable(format!("token endpoint: {other}")),
    }
}

/// A provider as configured, with its protocol.
pub struct Provider {
    pub name: String,
    pub display_name: String,
    pub kind: OAuthProviderKind,
    settings: OAuthProviderSettings,
    redirect_uri: String,
    http: reqwest::Client,
    discovery: Option<oidc::Discovery>,
}

impl Provider {
    /// Where the browser goes, with `state`, a fresh PKCE challenge and a fresh nonce.
    pub async fn authorize(&self, state: &str) -> Result<Authorization, ProviderError> {
        match &self.discovery {
            Some(discovery) => oidc::authorize(self, discovery, state).await,
            None => github::authorize(self, state),
        }
    }

    /// The identity behind a callback's `code`, checked against the flow's PKCE verifier and
    /// (OpenID Connect) nonce.
    pub async fn redeem(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<VouchedIdentity, ProviderError> {
        let identity = match &self.discovery {
            Some(discovery) => oidc::redeem(self, discovery, code, pkce_verifier, nonce).await,
            None => github::redeem(self, code, pkce_verifier).await,
        }?;
        checked(identity)
    }

    /// The identity in an ID token a native app obtained itself, for `client_id` or one of
    /// `native_client_ids`, whose nonce is `nonce` (or its SHA-256); with the token's expiry
    /// (Unix seconds), until which it must not be accepted again.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<(VouchedIdentity, i64), ProviderError> {
        let (identity, expires_at) = match &self.discovery {
            Some(discovery) => oidc::verify_native(self, discovery, id_token, nonce).await,
            None => Err(ProviderError::Unsupported),
        }?;
        Ok((checked(identity)?, expires_at))
    }

    /// Whether it issues ID tokens (OpenID Connect), which native apps can exchange.
    pub fn issues_id_tokens(&self) -> bool {
        self.discovery.is_some()
    }

    /// The kind's name, as configured.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            OAuthProviderKind::Oidc => "oidc",
            OAuthProviderKind::Google => "google",
            OAuthProviderKind::Apple => "apple",
            OAuthProviderKind::Github => "github",
        }
    }

    fn scopes(&self) -> Vec<String> {
        if !self.settings.scopes.is_empty() {
            return self.settings.scopes.clone();
        }
        let defaults: &[&str] = match self.kind {
            OAuthProviderKind::Github => &["read:user", "user:email"],
            OAuthProviderKind::Apple => &["name", "email"],
            OAuthProviderKind::Oidc | OAuthProviderKind::Google => &["email", "profile"],
        };
        defaults.iter().map(|s| s.to_string()).collect()
    }
}

/// Every configured provider, by name.
pub struct Providers {
    by_name: BTreeMap<String, Arc<Provider>>,
}

impl Providers {
    /// From `oauth.*`. Callback URLs are `<callback_base_url><base_path>/auth/oauth/<name>/callback`.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let oauth = &settings.oauth;
        let http = reqwest::ClientBuilder::new()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(oauth.provider_timeout_ms))
            .user_agent("authd")
            .build()
            .map_err(|e| format!("the HTTP client for providers: {e}"))?;
        let base = format!(
            "{}{}",
            oauth.callback_base_url.trim().trim_end_matches('/'),
            settings.base_path()
        );
        let mut by_name = BTreeMap::new();
        for (name, provider) in &oauth.providers {
            let discovery = match provider.kind {
                OAuthProviderKind::Github => None,
                kind => Some(oidc::Discovery::new(&oidc::issuer_of(kind, provider))?),
            };
            let display_name = if provider.display_name.is_empty() {
                name.clone()
            } else {
                provider.display_name.clone()
            };
            by_name.insert(
                name.clone(),
                Arc::new(Provider {
                    name: name.clone(),
                    display_name,
                    kind: provider.kind,
                    settings: provider.clone(),
                    redirect_uri: format!("{base}/auth/oauth/{name}/callback"),
                    http: http.clone(),
                    discovery,
                }),
            );
        }
        Ok(Providers { by_name })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Provider>> {
        self.by_name.get(name).cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.by_name.values()
    }
}
