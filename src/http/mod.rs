//! The HTTP edge: routes, extractors, middleware and the error mapping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use actix_cors::Cors;
use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest};
use utoipa_actix_web::{scope, service_config::ServiceConfig};

use crate::actors::rate_limiter::RateLimiter;
use crate::cache::Cache;
use crate::config::Settings;
use crate::error::AppError;
use crate::flows::account::AccountService;
use crate::flows::admin::AdminService;
use crate::flows::auth::AuthService;
use crate::flows::email_links::EmailLinkService;
use crate::store::Store;

pub mod client_ip;
pub mod connections;
pub mod cookies;
pub mod error;
pub mod extractors;
pub mod middleware;
pub mod openapi;
pub mod routes;

/// What handlers and middleware reach through `web::Data`; one per HTTP worker.
pub struct AppState {
    pub auth: AuthService,
    pub account: AccountService,
    pub admin: AdminService,
    pub email_links: EmailLinkService,
    pub mfa: crate::flows::mfa::MfaService,
    pub federation: crate::flows::federation::FederationService,
    pub webhooks: crate::flows::webhooks::WebhookService,
    /// `auth.mfa.required`, enforced by the [`extractors::AuthUser`] extractor.
    pub mfa_requirement: crate::domain::assurance::MfaRequirement,
    pub rate_limiter: crate::actors::Tracked<RateLimiter>,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub cookies: cookies::CookiePolicy,
    /// The `one_time_token` cookie set by `POST /auth/tokens/validate`.
    pub one_time_cookie: cookies::CookiePolicy,
    /// The `oauth_flow` cookie of a round trip to a provider (path `/auth/oauth`).
    pub oauth_cookie: cookies::CookiePolicy,
    /// The `oauth_link` cookie of a link offer (path `/me/identities`).
    pub link_cookie: cookies::CookiePolicy,
    pub oauth_flow_ttl_seconds: i64,
    pub base_path: String,
    pub max_body_bytes: usize,
    /// `http.max_header_bytes`: larger URIs and headers get 431.
    pub max_header_bytes: usize,
    /// `server.client_body_timeout_ms`: a JSON body must have arrived within this.
    pub body_timeout: std::time::Duration,
    pub trusted_proxies: Arc<client_ip::TrustedProxies>,
    pub hasher: crate::actors::hasher::HasherPool,
    /// Who may read `/metrics`; `None` when metrics are off.
    pub metrics_networks: Option<Arc<[ipnet::IpNet]>>,
}

/// A provider's answer posted to a callback (`response_mode=form_post`, Apple's): a cross-site
/// navigation, answered with a redirect whatever it carries. Its own check (the state bound to
/// the browser's `oauth_flow` cookie) is what stops a forged one, not the origin rules.
pub fn provider_form_post(method: &Method, path: &str) -> bool {
    method == Method::POST && path.contains("/auth/oauth/") && path.ends_with("/callback")
}

/// The methods a browser may use across origins.
pub const CORS_METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PATCH, Method::DELETE];

/// The request headers a browser may send across origins: the API's own, and W3C trace context
/// (a frontend traced with OpenTelemetry sends `traceparent` and `tracestate` on every call).
pub const CORS_HEADERS: [header::HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    middleware::X_REQUEST_ID,
    header::HeaderName::from_static("traceparent"),
    header::HeaderName::from_static("tracestate"),
];

/// CORS from the allowlist: credentials allowed, so origins are always listed, never `*`.
/// Requests without an `Origin` (mobile apps, servers, curl) are not affected.
pub fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(CORS_METHODS)
        .allowed_headers(CORS_HEADERS)
        .expose_headers([
            middleware::X_REQUEST_ID,
            error::RATELIMIT,
            error::RATELIMIT_POLICY,
            header::RETRY_AFTER,
        ])
        .supports_credentials()
        // Apple posts a provider's answer from its own origin (`response_mode=form_post`): a
        // navigation, which the callback turns into a redirect.
        .allowed_origin_fn(|_, request| provider_form_post(&request.method, request.uri.path()))
        // A browser request from another origin is refused outright (403), not merely left
        // without CORS headers: defence in depth for the cookie-carrying endpoints.
        .block_on_origin_mismatch(true)
        .max_age(settings.http.cors_max_age_seconds);
    for origin in settings.cors_origins() {
        cors = cors.allowed_origin(&origin);
    }
    cors
}

/// Registers every route under the base path. The same call feeds [`openapi::document`], so
/// what is served is what is documented.
pub fn configure(base_path: &str) -> impl FnOnce(&mut ServiceConfig) + '_ {
    use routes::{account, admin, auth, email_links, federation, health, mfa, passkeys, webhooks};
    move |cfg| {
        cfg.service(
            scope(base_path)
                .service(
                    scope("/auth")
                        .service(auth::signup)
                        .service(auth::login)
                        .service(auth::refresh)
                        .service(auth::logout)
                        .service(auth::logout_all)
                        .service(mfa::verify)
                        .service(mfa::reauthenticate)
                        .service(passkeys::second_factor_options)
                        .service(passkeys::step_up_options)
                        .service(passkeys::passwordless_options)
                        .service(passkeys::passwordless_login)
                        .service(account::sessions)
                        .service(account::revoke_session)
                        .service(account::change_password)
                        .service(email_links::forgot_password)
                        .service(email_links::reset_password)
                        .service(email_links::verify_email)
                        .service(email_links::resend_verification)
                        .service(email_links::validate_token)
                        .service(email_links::request_email_login)
                        .service(email_links::email_login)
                        .service(email_links::confirm_email_change)
                        .service(federation::providers)
                        .service(federation::start)
                        .service(federation::callback)
                        .service(federation::callback_form)
                        .service(federation::native_nonce)
                        .service(federation::exchange_id_token),
                )
                .service(account::my_events)
                .service(account::me)
                .service(account::update_me)
                .service(account::delete_me)
                .service(account::request_email_change)
                .service(mfa::my_factors)
                .service(mfa::begin_totp)
                .service(mfa::confirm_totp)
                .service(mfa::remove_totp)
                .service(mfa::regenerate_recovery_codes)
                .service(passkeys::registration_options)
                .service(passkeys::register)
                .service(passkeys::list)
                .service(passkeys::rename)
                .service(passkeys::remove)
                .service(federation::my_identities)
                .service(federation::start_link)
                .service(federation::accept_link)
                .service(federation::unlink)
                .service(
                    scope("/admin")
                        .service(admin::invite)
                        .service(admin::events)
                        .service(admin::list_users)
                        .service(admin::get_user)
                        .service(admin::update_user)
                        .service(admin::delete_user)
                        .service(admin::revoke_sessions)
                        .service(mfa::user_factors)
                        .service(mfa::reset_user)
                        .service(webhooks::list_webhooks)
                        .service(webhooks::create_webhook)
                        .service(webhooks::delete_webhook)
                        .service(webhooks::webhook_deliveries)
                        .service(webhooks::retry_delivery),
                )
                .service(health::jwks)
                .service(health::live)
                .service(health::ready),
        );
    }
}

/// Registers the routes on a plain actix `ServiceConfig` (the app itself; the document is made
/// once by [`openapi::document`]).
pub fn register(base_path: &str) -> impl FnOnce(&mut web::ServiceConfig) + '_ {
    move |cfg| configure(base_path)(&mut ServiceConfig::new(cfg))
}

/// The operator's routes, outside the API document: `/metrics`, and (when given a document)
/// `/openapi.json` and Swagger UI at `/docs/`.
pub fn operations(
    base_path: &str,
    document: Option<utoipa::openapi::OpenApi>,
) -> impl FnOnce(&mut web::ServiceConfig) + '_ {
    move |cfg| {
        cfg.route(
            &format!("{base_path}/metrics"),
            web::get().to(routes::metrics::render),
        );
        if let Some(document) = document {
            let docs = format!("{base_path}/docs");
            cfg.service(web::redirect(docs.clone(), format!("{docs}/")));
            cfg.service(
                utoipa_swagger_ui::SwaggerUi::new(format!("{base_path}/docs/{{_:.*}}"))
                    .url(format!("{base_path}/openapi.json"), document),
            );
        }
    }
}

/// The answer when no route matched: 405 with `Allow` (RFC 9110 §15.5.6) when the path exists
/// with other methods, else 404.
pub async fn no_route(req: HttpRequest) -> Result<actix_web::HttpResponse, AppError> {
    // The decoded path, as the router matched it.
    let path = req.match_info().as_str().to_string();
    if !req.resource_map().has_resource(&path) {
        return Err(AppError::NotFound);
    }
    let base_path = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.base_path.clone())
        .unwrap_or_default();
    let mut response = actix_web::HttpResponse::from_error(AppError::MethodNotAllowed);
    if let Ok(value) = header::HeaderValue::from_str(&allowed_methods(&base_path, &path)) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Ok(response)
}

/// Path templates of the API under one base path, split in segments, with the methods of each.
type MethodTable = Vec<(Vec<String>, String)>;

fn method_table(base_path: &str) -> MethodTable {
    openapi::document(base_path)
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let methods: Vec<&str> = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ]
            .into_iter()
            .filter_map(|(method, served)| served.then_some(method))
            .collect();
            (
                path.split('/').map(str::to_string).collect(),
                methods.join(", "),
            )
        })
        .collect()
}

/// The `Allow` value for a path that exists: the documented methods of the API path it matches;
/// the operator's routes outside the document (`/metrics`, `/openapi.json`, `/docs/`) are GET only.
pub fn allowed_methods(base_path: &str, path: &str) -> String {
    static TABLES: OnceLock<Mutex<HashMap<String, Arc<MethodTable>>>> = OnceLock::new();
    let table = {
        let mut tables = TABLES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tables
            .entry(base_path.to_string())
            .or_insert_with(|| Arc::new(method_table(base_path)))
            .clone()
    };
    let segments: Vec<&str> = path.split('/').collect();
    table
        .iter()
        .find(|(template, _)| {
            template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| {
                    t == s || (t.starts_with('{') && t.ends_with('}') && !s.is_empty())
                })
        })
        .map(|(_, methods)| methods.clone())
        .unwrap_or_else(|| "GET".to_string())
}
