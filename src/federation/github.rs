//! GitHub: plain OAuth 2.0 (no ID token); the account comes from `GET /user` and the verified
//! primary address from `GET /user/emails`.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{Authorization, Provider, ProviderError, VouchedIdentity};

fn endpoint(configured: &str, default: &str) -> String {
    let configured = configured.trim();
    if configured.is_empty() {
        default.to_string()
    } else {
        configured.trim_end_matches('/').to_string()
    }
}

fn unavailable(what: &str) -> impl Fn(oauth2::url::ParseError) -> ProviderError + '_ {
    move |e| ProviderError::Unavailable(format!("{what}: {e}"))
}

fn client(
    provider: &Provider,
) -> Result<
    BasicClient<
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    ProviderError,
> {
    let settings = &provider.settings;
    let authorize = endpoint(
        &settings.authorization_url,
        "https://github.com/login/oauth/authorize",
    );
    let token = endpoint(
        &settings.token_url,
        "https://github.com/login/oauth/access_token",
    );
    Ok(BasicClient::new(ClientId::new(settings.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            settings.client_secret.expose().to_string(),
        ))
        .set_auth_uri(AuthUrl::new(authorize).map_err(unavailable("authorization_url"))?)
        .set_token_uri(TokenUrl::new(token).map_err(unavailable("token_url"))?)
        .set_redirect_uri(
            RedirectUrl::new(provider.redirect_uri.clone()).map_err(unavailable("redirect URI"))?,
        ))
}

pub(super) fn authorize(provider: &Provider, state: &str) -> Result<Authorization, ProviderError> {
    let client = client(provider)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = state.to_string();
    let (url, _) = client
        .authorize_url(move || CsrfToken::new(state))
        .add_scopes(provider.scopes().into_iter().map(Scope::new))
        .set_pkce_challenge(challenge)
        .url();
    Ok(Authorization {
        url: url.to_string(),
        pkce_verifier: verifier.secret().clone(),
        // GitHub knows no nonce; PKCE and the state bind the callback to this flow.
        nonce: String::new(),
    })
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

pub(super) async fn redeem(
    provider: &Provider,
    code: &str,
    pkce_verifier: &str,
) -> Result<VouchedIdentity, ProviderError> {
    let token = client(provider)?
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
        .request_async(&provider.http)
        .await
        .map_err(super::token_endpoint_error)?;
    let access = token.access_token().secret();
    let api = endpoint(&provider.settings.api_url, "https://api.github.com");
    let user: GithubUser = get(provider, &format!("{api}/user"), access).await?;
    let emails: Vec<GithubEmail> = get(provider, &format!("{api}/user/emails"), access).await?;
    // The primary address, as GitHub says whether it is verified; none when there is no primary.
    let primary = emails.into_iter().find(|email| email.primary);
    Ok(VouchedIdentity {
        subject: user.id.to_string(),
        email_verified: primary.as_ref().is_some_and(|email| email.verified),
        email: primary.map(|email| email.email),
        name: user.name,
    })
}

async fn get<T: DeserializeOwned>(
    provider: &Provider,
    url: &str,
    access_token: &str,
) -> Result<T, ProviderError> {
    let response = provider
        .http
        .get(url)
        .bearer_auth(access_token)
        .header("Accept", "application/vnd.github+json")
        .send()
        .await
        .map_err(|e| ProviderError::Unavailable(format!("{url}: {e}")))?;
    if !response.status().is_success() {
        return Err(ProviderError::Unavailable(format!(
            "{url} answered {}",
            response.status()
        )));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| ProviderError::Unavailable(format!("{url}: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| ProviderError::Unavailable(format!("{url}: {e}")))
}
