//! Sign-in with other providers: the browser's round trip under `/auth/oauth/{provider}`
//! (`start`, `callback`), native apps' ID tokens (`token`), and the caller's linked identities
//! under `/me/identities`.
//!
//! The callback answers the browser with a redirect to the return URL, never with JSON: the
//! outcome rides in the URL's fragment (never sent to a server, never in a `Referer`):
//! `#status=signed_in` (the refresh cookie is set: call `POST /auth/refresh`),
//! `#status=mfa_required&mfaToken=..&methods=..&expiresIn=..`,
//! `#status=link_required&linkToken=..&email=..&provider=..` (with the `oauth_link` cookie that
//! `POST /me/identities` needs), `#status=verification_sent`, `#status=linked`,
//! or `#status=error&error=<code>`.

use actix_web::http::header::{HeaderValue, ALLOW, LOCATION, ORIGIN};
use actix_web::{delete, get, post, web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{token_response, MfaRequiredBody, SignedInBody, TokenTransport};
use crate::domain::claims::Caller;
use crate::domain::opaque_token::OpaqueToken;
use crate::error::AppError;
use crate::flows::federation::{Callback, CallbackResult, FederatedOutcome, StartedFlow};
use crate::http::cookies::{request_cookie, OAUTH_FLOW_COOKIE, OAUTH_LINK_COOKIE};
use crate::http::error::ErrorBody;
use crate::http::extractors::{AuthUser, Client, JsonBody, QueryParams};
use crate::http::middleware::HeadRequest;
use crate::http::AppState;
use crate::store::LinkedIdentity;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderBody {
    /// The name in the paths: `/auth/oauth/{name}/start`.
    name: String,
    display_name: String,
    #[schema(value_type = ProviderKind)]
    kind: &'static str,
}

/// A provider's protocol, for the document.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ProviderKind {
    Oidc,
    Google,
    Apple,
    Github,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Where the browser comes back to: an allowed return URL (`oauth.allowed_return_urls`);
    /// default the first of them.
    return_to: Option<String>,
}

/// What a provider sends back (query string, or Apple's form post).
#[derive(Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    /// The provider's refusal (`access_denied` when the user said no).
    error: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IdTokenRequest {
    /// The ID token the app got from the provider's SDK.
    #[schema(required = true, min_length = 1)]
    id_token: String,
    /// The nonce the app gave the provider (its SHA-256 in hex may be what the token holds): one
    /// from `POST /auth/oauth/{provider}/nonce`, unless `oauth.native_nonces = "any"`.
    #[schema(required = true, min_length = 1)]
    nonce: String,
    token_transport: TokenTransport,
}

/// The identity's address belongs to an account: sign in to it (password, passkey...), then
/// `POST /me/identities` with `linkToken` to link the provider.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkRequiredBody {
    /// Always `true`.
    link_required: bool,
    /// Single-use, for the account holding `email`, valid `oauth.flow_ttl_seconds`.
    link_token: String,
    email: String,
    /// The provider whose identity is offered (for the page's "link your ... account?").
    provider: String,
}

/// A new account whose address the provider did not verify: a verification mail is on its way.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSentBody {
    /// Always `true`.
    verification_sent: bool,
}

/// `POST /auth/oauth/{provider}/token` answers like a login, or says what is left to do.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum IdTokenResponse {
    SignedIn(SignedInBody),
    MfaRequired(MfaRequiredBody),
    LinkRequired(LinkRequiredBody),
    VerificationSent(VerificationSentBody),
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityBody {
    provider: String,
    /// The address the provider gave.
    email: Option<String>,
    #[serde(serialize_with = "super::timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "super::optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<LinkedIdentity> for IdentityBody {
    fn from(identity: LinkedIdentity) -> Self {
        IdentityBody {
            provider: identity.provider,
            email: identity.email,
            created_at: identity.created_at,
            last_used_at: identity.last_used_at,
        }
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct LinkStartRequest {
    /// As `returnTo` of `GET /auth/oauth/{provider}/start`.
    return_to: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkStartBody {
    /// Send the browser there (the `oauth_flow` cookie is set); it comes back with
    /// `#status=linked` or `#status=error`.
    authorization_url: String,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct AcceptLinkRequest {
    /// From a sign-in that answered `link_required`.
    #[schema(required = true, min_length = 1)]
    link_token: String,
}

/// The cookie that ties the provider's callback to this browser.
fn flow_cookie(state: &AppState, flow: &StartedFlow) -> actix_web::cookie::Cookie<'static> {
    state
        .oauth_cookie
        .oauth_flow(&flow.browser_key, state.oauth_flow_ttl_seconds)
}

/// The configured sign-in providers
#[utoipa::path(
    tag = "federation",
    responses((status = 200, description = "The configured providers", body = [ProviderBody]))
)]
#[get("/oauth/providers")]
pub async fn providers(state: web::Data<AppState>) -> HttpResponse {
    let providers: Vec<ProviderBody> = state
        .federation
        .providers()
        .into_iter()
        .map(|p| ProviderBody {
            name: p.name,
            display_name: p.display_name,
            kind: p.kind,
        })
        .collect();
    HttpResponse::Ok().json(providers)
}

/// Start signing in through a provider
#[utoipa::path(
    tag = "federation",
    params(("provider" = String, Path, description = "A configured provider's name"), StartQuery),
    responses(
        (status = 302, description = "To the provider, with state, PKCE (S256) and a nonce; the `oauth_flow` cookie ties the callback to this browser. A provider that cannot be reached sends the browser back to the return URL with `#status=error&error=provider_unavailable`",
            headers(("Location" = String, description = "The provider's authorization URL, or the return URL"),
                    ("Set-Cookie" = String, description = "`oauth_flow`: HttpOnly, Path=/auth/oauth, SameSite=None; Secure (Lax in development)"))),
        (status = 400, description = "`validation_failed`: `returnTo` is not an allowed return URL", body = ErrorBody),
        (status = 404, description = "`not_found`: no such provider", body = ErrorBody),
    )
)]
#[get("/oauth/{provider}/start")]
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    provider: web::Path<String>,
    QueryParams(query): QueryParams<StartQuery>,
) -> Result<HttpResponse, AppError> {
    if let Some(refused) = refused_head(&req, "GET") {
        return Ok(refused);
    }
    let return_to = state.federation.return_url(query.return_to.as_deref())?;
    match state
        .federation
        .start(&provider, query.return_to.as_deref(), None)
        .await
    {
        Ok(flow) => Ok(HttpResponse::Found()
            .cookie(flow_cookie(&state, &flow))
            .insert_header((LOCATION, flow.authorization_url))
            .finish()),
        // A navigation: the page gets the failure back where it can show it.
        Err(e @ AppError::Federation(_)) => Ok(back_to_frontend(
            &state,
            CallbackResult {
                return_to,
                outcome: Err(e),
            },
            None,
        )),
        Err(e) => Err(e),
    }
}

/// 405 for a HEAD of a GET that acts (see [`HeadRequest`]), with the methods that do act.
fn refused_head(req: &HttpRequest, allow: &'static str) -> Option<HttpResponse> {
    req.extensions().contains::<HeadRequest>().then(|| {
        let mut refused = HttpResponse::from_error(AppError::MethodNotAllowed);
        let allow = HeaderValue::from_static(allow);
        refused.headers_mut().insert(ALLOW, allow);
        refused
    })
}

/// A new key for a link offer to this browser, set with the offer in the `oauth_link` cookie. Always
/// new: an `oauth_link` arriving here (the callback, the token exchange) is none authd set, since
/// its own is scoped to `/me/identities`; one planted from elsewhere must not choose the binding.
/// So a browser's newest offer is the one it can take.
fn new_link_key() -> String {
    OpaqueToken::generate().as_str().to_string()
}

/// The redirect back to the frontend, the outcome in the fragment. `link_key`: the browser's,
/// kept for a link offer in the `oauth_link` cookie.
fn back_to_frontend(
    state: &AppState,
    result: CallbackResult,
    link_key: Option<&str>,
) -> HttpResponse {
    let mut url = result.return_to;
    let mut fragment = url::form_urlencoded::Serializer::new(String::new());
    let mut answer = HttpResponse::Found();
    answer.cookie(state.oauth_cookie.oauth_flow_cleared());
    match result.outcome {
        Ok(FederatedOutcome::SignedIn(_, tokens)) => {
            answer.cookie(state.cookies.refresh(&tokens.refresh_token));
            fragment.append_pair("status", "signed_in");
        }
        Ok(FederatedOutcome::MfaRequired(challenge)) => {
            fragment
                .append_pair("status", "mfa_required")
                .append_pair("mfaToken", &challenge.mfa_token)
                .append_pair("methods", &challenge.methods.join(","))
                .append_pair("expiresIn", &challenge.expires_in.to_string());
        }
        Ok(FederatedOutcome::LinkRequired {
            link_token,
            email,
            provider,
        }) => {
            if let Some(key) = link_key {
                let ttl = state.oauth_flow_ttl_seconds;
                answer.cookie(state.link_cookie.oauth_link(key, ttl));
            }
            fragment
                .append_pair("status", "link_required")
                .append_pair("linkToken", &link_token)
                .append_pair("email", &email)
                .append_pair("provider", &provider);
        }
        Ok(FederatedOutcome::VerificationSent) => {
            fragment.append_pair("status", "verification_sent");
        }
        Ok(FederatedOutcome::Linked) => {
            fragment.append_pair("status", "linked");
        }
        Err(e) => {
            if matches!(e, AppError::Internal(_) | AppError::Unavailable(_)) {
                tracing::error!(error = ?e, "provider callback failed");
            }
            fragment
                .append_pair("status", "error")
                .append_pair("error", e.code());
        }
    }
    url.set_fragment(Some(&fragment.finish()));
    answer.insert_header((LOCATION, url.to_string()));
    answer.finish()
}

async fn finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: crate::domain::client::ClientContext,
    provider: &str,
    params: CallbackParams,
) -> HttpResponse {
    let browser_key = request_cookie(&req, OAUTH_FLOW_COOKIE);
    let link_key = new_link_key();
    let presented = Callback {
        state: params.state.as_deref(),
        code: params.code.as_deref(),
        error: params.error.as_deref(),
        browser_key: browser_key.as_deref(),
        link_key: Some(&link_key),
    };
    let result = state
        .federation
        .callback(provider, presented, &client)
        .await;
    back_to_frontend(&state, result, Some(&link_key))
}

/// A provider's answer (redirect)
#[utoipa::path(
    tag = "federation",
    params(("provider" = String, Path, description = "A configured provider's name"), CallbackParams),
    responses((status = 302, description = "Back to the return URL, the outcome in the fragment (`#status=...`); signed in: the refresh cookie is set",
        headers(("Location" = String, description = "The return URL with the outcome in its fragment"),
                ("Set-Cookie" = String, description = "`oauth_flow` cleared; `refresh_token` when signed in; `oauth_link` (HttpOnly, SameSite=Strict, Path=/me/identities) with a link offer"))))
)]
#[get("/oauth/{provider}/callback")]
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    provider: web::Path<String>,
    QueryParams(params): QueryParams<CallbackParams>,
) -> HttpResponse {
    if let Some(refused) = refused_head(&req, "GET, POST") {
        return refused;
    }
    finish(req, state, client, &provider, params).await
}

/// A provider's answer (form post)
#[utoipa::path(
    tag = "federation",
    params(("provider" = String, Path, description = "A configured provider's name")),
    request_body(content = CallbackParams, content_type = "application/x-www-form-urlencoded"),
    responses((status = 302, description = "As the GET callback: Apple posts its answer (`response_mode=form_post`)"))
)]
#[post("/oauth/{provider}/callback")]
pub async fn callback_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    provider: web::Path<String>,
    params: web::Form<CallbackParams>,
) -> HttpResponse {
    finish(req, state, client, &provider, params.into_inner()).await
}

/// A nonce for a native app's ID token
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NativeNonceBody {
    /// Give it to the provider's SDK (Google: as it is; Sign in with Apple: its SHA-256 in hex),
    /// then send it back with the ID token. Works once, for this provider.
    nonce: String,
    /// Seconds it waits for its ID token.
    expires_in: u64,
}

/// A nonce for the ID token a native app is about to ask its provider for
#[utoipa::path(
    tag = "federation",
    params(("provider" = String, Path, description = "A configured OpenID Connect provider's name")),
    responses(
        (status = 200, description = "A single-use nonce for `POST /auth/oauth/{provider}/token`", body = NativeNonceBody),
        (status = 400, description = "`validation_failed`: a provider without ID tokens", body = ErrorBody),
        (status = 404, description = "`not_found`: no such provider", body = ErrorBody),
    )
)]
#[post("/oauth/{provider}/nonce")]
pub async fn native_nonce(
    state: web::Data<AppState>,
    provider: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let issued = state.federation.issue_native_nonce(&provider).await?;
    Ok(HttpResponse::Ok().json(NativeNonceBody {
        nonce: issued.nonce,
        expires_in: issued.expires_in,
    }))
}

/// Sign in with a provider's ID token (native apps)
#[utoipa::path(
    tag = "federation",
    params(("provider" = String, Path, description = "A configured OpenID Connect provider's name")),
    request_body = IdTokenRequest,
    responses(
        (status = 200, description = "Signed in (refresh cookie set), or what is left: `mfaRequired`, `linkRequired`, `verificationSent`", body = IdTokenResponse,
            headers(("Set-Cookie" = String, description = "`refresh_token` when signed in; `oauth_link` with a link offer to a page (a request with `Origin`)"))),
        (status = 400, description = "`validation_failed` (a missing field; a provider without ID tokens) or `identity_email_missing`", body = ErrorBody),
        (status = 401, description = "`oauth_failed`: the token's issuer, audience, nonce, signature or lifetime is wrong, it was used before, or the nonce is not an unused one authd issued for this provider", body = ErrorBody),
        (status = 403, description = "`signup_disabled`, `account_locked` or `email_not_verified`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such provider", body = ErrorBody),
        (status = 409, description = "`identity_email_unverified`, `identity_taken`, or `email_taken` (a new account for an address a deleted account held, where that is not allowed)", body = ErrorBody),
        (status = 502, description = "`provider_unavailable`", body = ErrorBody),
    )
)]
#[post("/oauth/{provider}/token")]
pub async fn exchange_id_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    provider: web::Path<String>,
    JsonBody(body): JsonBody<IdTokenRequest>,
) -> Result<HttpResponse, AppError> {
    if body.id_token.is_empty() || body.nonce.is_empty() {
        let field = if body.id_token.is_empty() {
            "idToken"
        } else {
            "nonce"
        };
        return Err(AppError::validation(field, "is required"));
    }
    // A page's exchange (a sign-in button's ID token): a link offer is bound to the browser,
    // as a round trip's is; an app's is taken only by an app.
    let link_key = req.headers().contains_key(ORIGIN).then(new_link_key);
    let outcome = state
        .federation
        .exchange_id_token(
            &provider,
            &body.id_token,
            &body.nonce,
            link_key.as_deref(),
            &client,
        )
        .await?;
    Ok(match outcome {
        FederatedOutcome::SignedIn(user, tokens) => token_response(
            HttpResponse::Ok(),
            &state,
            Some(&user),
            tokens,
            body.token_transport,
        ),
        FederatedOutcome::MfaRequired(challenge) => {
            HttpResponse::Ok().json(MfaRequiredBody::from(challenge))
        }
        FederatedOutcome::LinkRequired {
            link_token,
            email,
            provider,
        } => {
            let mut answer = HttpResponse::Ok();
            if let Some(key) = &link_key {
                let ttl = state.oauth_flow_ttl_seconds;
                answer.cookie(state.link_cookie.oauth_link(key, ttl));
            }
            answer.json(LinkRequiredBody {
                provider,
                link_required: true,
                link_token,
                email,
            })
        }
        FederatedOutcome::VerificationSent => HttpResponse::Ok().json(VerificationSentBody {
            verification_sent: true,
        }),
        // Linking is a round trip of a signed-in browser, never an app's token exchange.
        FederatedOutcome::Linked => {
            return Err(AppError::Internal(
                "a token exchange linked an identity".into(),
            ))
        }
    })
}

/// The caller's linked provider identities
#[utoipa::path(
    tag = "federation",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's linked identities, oldest first", body = [IdentityBody]))
)]
#[get("/me/identities")]
pub async fn my_identities(
    state: web::Data<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<HttpResponse, AppError> {
    let identities = state.federation.identities(caller.user.id).await?;
    let body: Vec<IdentityBody> = identities.into_iter().map(IdentityBody::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// Start linking a provider identity
#[utoipa::path(
    tag = "federation",
    security(("bearer" = [])),
    params(("provider" = String, Path, description = "A configured provider's name")),
    request_body(content = Option<LinkStartRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Where to send the browser to link the provider (needs a recent sign-in)", body = LinkStartBody),
        (status = 404, description = "`not_found`: no such provider", body = ErrorBody),
    )
)]
#[post("/me/identities/{provider}/start")]
pub async fn start_link(
    state: web::Data<AppState>,
    AuthUser(Caller { claims, .. }): AuthUser,
    provider: web::Path<String>,
    body: Result<JsonBody<LinkStartRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    let flow = state
        .federation
        .start(&provider, body.return_to.as_deref(), Some(&claims))
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(flow_cookie(&state, &flow))
        .json(LinkStartBody {
            authorization_url: flow.authorization_url,
        }))
}

/// Link the identity offered for this account's address
#[utoipa::path(
    tag = "federation",
    security(("bearer" = [])),
    request_body = AcceptLinkRequest,
    responses(
        (status = 201, description = "Linked (needs a recent sign-in); the `oauth_link` cookie is cleared", body = IdentityBody,
            headers(("Set-Cookie" = String, description = "`oauth_link` cleared"))),
        (status = 400, description = "`validation_failed`: the link token is unknown, used, expired or for another account, or taken elsewhere than where it was offered: an offer made to a browser needs its `oauth_link` cookie, an app's offer a request without `Origin` (then used up)", body = ErrorBody),
        (status = 401, description = "`token_invalid`: the session ended meanwhile", body = ErrorBody),
        (status = 409, description = "`identity_taken`", body = ErrorBody),
    )
)]
#[post("/me/identities")]
pub async fn accept_link(
    req: HttpRequest,
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(caller): AuthUser,
    body: Result<JsonBody<AcceptLinkRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    let browser_key = request_cookie(&req, OAUTH_LINK_COOKIE);
    let from_page = req.headers().contains_key(ORIGIN);
    let linked = state
        .federation
        .accept_link(
            &caller,
            &body.link_token,
            browser_key.as_deref(),
            from_page,
            &client,
        )
        .await?;
    Ok(HttpResponse::Created()
        .cookie(state.link_cookie.oauth_link_cleared())
        .json(IdentityBody::from(linked)))
}

/// Unlink a provider identity
#[utoipa::path(
    tag = "federation",
    security(("bearer" = [])),
    params(("provider" = String, Path, description = "A configured provider's name")),
    responses(
        (status = 204, description = "Unlinked (needs a recent sign-in)"),
        (status = 404, description = "`not_found`: no identity at that provider", body = ErrorBody),
        (status = 409, description = "`last_sign_in_method`: the account would have no way to sign in", body = ErrorBody),
    )
)]
#[delete("/me/identities/{provider}")]
pub async fn unlink(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(Caller { claims, .. }): AuthUser,
    provider: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    state.federation.unlink(&claims, &provider, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}
