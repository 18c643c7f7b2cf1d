//! OpenID Connect providers (any issuer, Google, Apple): discovery, the code flow with PKCE and a
//! nonce, and ID tokens that native apps bring.

use std::time::{Duration, Instant};

use chrono::Utc;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SignatureVerificationError,
};
use serde::Serialize;
use tokio::sync::RwLock;

use super::{Authorization, Provider, ProviderError, VouchedIdentity};
use crate::config::{OAuthProviderKind, OAuthProviderSettings};
use crate::domain::federation::{check_issue_time, check_remembered_lifetime, nonce_matches};

/// How long a discovery document (and its keys) is trusted before it is fetched again.
const METADATA_LIFETIME: Duration = Duration::from_secs(3600);
/// The least time between two fetches forced by an unknown key, so a stream of tokens naming
/// keys that do not exist cannot make authd hammer the provider.
const FORCED_REFRESH_SPACING: Duration = Duration::from_secs(60);

/// The issuer a provider of `kind` is discovered from.
pub(super) fn issuer_of(kind: OAuthProviderKind, settings: &OAuthProviderSettings) -> String {
    match (kind, settings.issuer.trim()) {
        (_, issuer) if !issuer.is_empty() => issuer.to_string(),
        (OAuthProviderKind::Google, _) => "https://accounts.google.com".into(),
        (OAuthProviderKind::Apple, _) => "https://appleid.apple.com".into(),
        _ => String::new(),
    }
}

/// A provider's discovery document and keys, cached.
pub(super) struct Discovery {
    issuer: IssuerUrl,
    cached: RwLock<Option<(CoreProviderMetadata, Instant)>>,
    last_forced: std::sync::Mutex<Option<Instant>>,
}

impl Discovery {
    pub(super) fn new(issuer: &str) -> Result<Self, String> {
        let issuer = IssuerUrl::new(issuer.to_string())
            .map_err(|e| format!("issuer {issuer:?} is not a URL: {e}"))?;
        Ok(Discovery {
            issuer,
            cached: RwLock::new(None),
            last_forced: std::sync::Mutex::new(None),
        })
    }

    async fn metadata(&self, provider: &Provider) -> Result<CoreProviderMetadata, ProviderError> {
        if let Some((metadata, fetched)) = self.cached.read().await.as_ref() {
            if fetched.elapsed() < METADATA_LIFETIME {
                return Ok(metadata.clone());
            }
        }
        self.fetch(provider).await
    }

    /// Fetched again because a token named a key the cache does not hold; `None` when the last
    /// forced fetch was too recent.
    async fn refreshed(
        &self,
        provider: &Provider,
    ) -> Result<Option<CoreProviderMetadata>, ProviderError> {
        {
            let mut last = self
                .last_forced
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|at| at.elapsed() < FORCED_REFRESH_SPACING) {
                return Ok(None);
            }
            *last = Some(Instant::now());
        }
        self.fetch(provider).await.map(Some)
    }

    async fn fetch(&self, provider: &Provider) -> Result<CoreProviderMetadata, ProviderError> {
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &provider.http)
            .await
            .map_err(|e| {
                tracing::warn!(provider = %provider.name, error = %e, "provider discovery failed");
                ProviderError::Unavailable(format!("discovery: {e}"))
            })?;
        *self.cached.write().await = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }
}

/// Only asymmetric signatures: an HMAC keyed with the client secret proves nothing to a public
/// client, and `none` proves nothing to anyone.
fn asymmetric() -> [CoreJwsSigningAlgorithm; 9] {
    use CoreJwsSigningAlgorithm::*;
    [
        RsaSsaPkcs1V15Sha256,
        RsaSsaPkcs1V15Sha384,
        RsaSsaPkcs1V15Sha512,
        RsaSsaPssSha256,
        RsaSsaPssSha384,
        RsaSsaPssSha512,
        EcdsaP256Sha256,
        EcdsaP384Sha384,
        EdDsa,
    ]
}

fn client(
    provider: &Provider,
    metadata: CoreProviderMetadata,
    secret: Option<ClientSecret>,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    ProviderError,
> {
    let redirect = RedirectUrl::new(provider.redirect_uri.clone())
        .map_err(|e| ProviderError::Unavailable(format!("redirect URI: {e}")))?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.settings.client_id.clone()),
        secret,
    )
    .set_redirect_uri(redirect);
    // Apple takes the client secret in the form body only.
    Ok(if provider.kind == OAuthProviderKind::Apple {
        client.set_auth_type(AuthType::RequestBody)
    } else {
        client
    })
}

pub(super) async fn authorize(
    provider: &Provider,
    discovery: &Discovery,
    state: &str,
) -> Result<Authorization, ProviderError> {
    let metadata = discovery.metadata(provider).await?;
    let client = client(provider, metadata, None)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let nonce = Nonce::new_random();
    let (state, for_request) = (state.to_string(), nonce.clone());
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || for_request,
        )
        .set_pkce_challenge(challenge);
    for scope in provider.scopes() {
        request = request.add_scope(Scope::new(scope));
    }
    if provider.kind == OAuthProviderKind::Apple {
        // Apple posts the callback when it is asked for the name or the address.
        request = request.add_extra_param("response_mode", "form_post");
    }
    let (url, _, _) = request.url();
    Ok(Authorization {
        url: url.to_string(),
        pkce_verifier: verifier.secret().clone(),
        nonce: nonce.secret().clone(),
    })
}

pub(super) async fn redeem(
    provider: &Provider,
    discovery: &Discovery,
    code: &str,
    pkce_verifier: &str,
    nonce: &str,
) -> Result<VouchedIdentity, ProviderError> {
    let metadata = discovery.metadata(provider).await?;
    let client = client(provider, metadata, client_secret(provider)?)?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| ProviderError::Unavailable(format!("token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
        .request_async(&provider.http)
        .await
        .map_err(super::token_endpoint_error)?;
    let id_token = openidconnect::TokenResponse::id_token(&response)
        .ok_or_else(|| ProviderError::Refused("no ID token in the token response".into()))?;
    let expected = Nonce::new(nonce.to_string());
    let check = |client: &CoreClient<_, _, _, _, _, _>| {
        let verifier = client.id_token_verifier().set_allowed_algs(asymmetric());
        id_token.claims(&verifier, &expected).and_then(vouched)
    };
    match check(&client) {
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            let Some(fresh) = discovery.refreshed(provider).await? else {
                return Err(refused(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )));
            };
            check(&self::client(provider, fresh, None)?).map_err(refused)
        }
        other => other.map_err(refused),
    }
}

pub(super) async fn verify_native(
    provider: &Provider,
    discovery: &Discovery,
    id_token: &str,
    nonce: &str,
) -> Result<(VouchedIdentity, i64), ProviderError> {
    let token: CoreIdToken = id_token
        .parse()
        .map_err(|e| ProviderError::Refused(format!("not an ID token: {e}")))?;
    let metadata = discovery.metadata(provider).await?;
    match verify_with(provider, &metadata, &token, nonce) {
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => match discovery.refreshed(provider).await? {
            Some(fresh) => verify_with(provider, &fresh, &token, nonce).map_err(refused),
            None => Err(ProviderError::Refused("no key matches the token".into())),
        },
        other => other.map_err(refused),
    }
}

/// The token checked for each audience authd accepts (the web client and the native apps').
fn verify_with(
    provider: &Provider,
    metadata: &CoreProviderMetadata,
    token: &CoreIdToken,
    nonce: &str,
) -> Result<(VouchedIdentity, i64), ClaimsVerificationError> {
    let audiences =
        std::iter::once(&provider.settings.client_id).chain(&provider.settings.native_client_ids);
    let mut outcome = Err(ClaimsVerificationError::InvalidAudience(
        "no audience is configured".into(),
    ));
    for audience in audiences {
        let verifier = CoreIdTokenVerifier::new_public_client(
            ClientId::new(audience.clone()),
            metadata.issuer().clone(),
            metadata.jwks().clone(),
        )
        .set_allowed_algs(asymmetric());
        let check_nonce = |found: Option<&Nonce>| match found {
            Some(found) if nonce_matches(found.secret(), nonce) => Ok(()),
            _ => Err("the nonce does not match".to_string()),
        };
        outcome = token.claims(&verifier, check_nonce).and_then(|claims| {
            let expires_at = claims.expiration().timestamp();
            check_remembered_lifetime(expires_at, chrono::Utc::now().timestamp())
                .map_err(ClaimsVerificationError::Other)?;
            Ok((vouched(claims)?, expires_at))
        });
        if !matches!(outcome, Err(ClaimsVerificationError::InvalidAudience(_))) {
            break;
        }
    }
    outcome
}

/// The identity in verified claims, not issued in the future.
fn vouched(claims: &CoreIdTokenClaims) -> Result<VouchedIdentity, ClaimsVerificationError> {
    let now = chrono::Utc::now().timestamp();
    check_issue_time(claims.issue_time().timestamp(), now)
        .map_err(ClaimsVerificationError::Other)?;
    Ok(VouchedIdentity {
        subject: claims.subject().as_str().to_string(),
        email: claims.email().map(|email| email.as_str().to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|name| name.get(None))
            .map(|name| name.as_str().to_string()),
    })
}

fn refused(e: ClaimsVerificationError) -> ProviderError {
    ProviderError::Refused(format!("ID token: {e}"))
}

/// The client secret to present: as configured, or (Apple) a short-lived ES256 JWT signed with
/// the team's key.
fn client_secret(provider: &Provider) -> Result<Option<ClientSecret>, ProviderError> {
    let settings = &provider.settings;
    if provider.kind != OAuthProviderKind::Apple {
        let secret = settings.client_secret.expose();
        return Ok((!secret.is_empty()).then(|| ClientSecret::new(secret.to_string())));
    }
    #[derive(Serialize)]
    struct AppleSecret<'a> {
        iss: &'a str,
        iat: i64,
        exp: i64,
        aud: &'a str,
        sub: &'a str,
    }
    let now = Utc::now().timestamp();
    let issuer = issuer_of(provider.kind, settings);
    let claims = AppleSecret {
        iss: &settings.team_id,
        iat: now,
        exp: now + 300,
        aud: &issuer,
        sub: &settings.client_id,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(settings.key_id.clone());
    let key = jsonwebtoken::EncodingKey::from_ec_pem(settings.private_key.expose().as_bytes())
        .map_err(|e| ProviderError::Unavailable(format!("the Apple key: {e}")))?;
    let secret = jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| ProviderError::Unavailable(format!("the Apple client secret: {e}")))?;
    Ok(Some(ClientSecret::new(secret)))
}
