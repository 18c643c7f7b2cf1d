//! The HTTP edge: routes, extractors, middleware and the error mapping.

use std::sync::Arc;

use actix::Addr;
use actix_cors::Cors;
use actix_web::http::{header, Method};
use actix_web::web;

use crate::accounts::AccountService;
use crate::actors::rate_limiter::RateLimiter;
use crate::auth::AuthService;
use crate::cache::Cache;
use crate::config::Settings;
use crate::lifecycle::LifecycleService;
use crate::store::Store;

pub mod client_ip;
pub mod cookies;
pub mod error;
pub mod extractors;
pub mod middleware;
pub mod routes;

/// What handlers and middleware reach through `web::Data`; one per HTTP worker.
pub struct AppState {
    pub auth: AuthService,
    pub accounts: AccountService,
    pub lifecycle: LifecycleService,
    pub rate_limiter: Addr<RateLimiter>,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub cookies: cookies::CookiePolicy,
    /// The `one_time_token` cookie set by `POST /auth/tokens/validate`.
    pub one_time_cookie: cookies::CookiePolicy,
    pub base_path: String,
    pub max_body_bytes: usize,
    pub trusted_proxies: Arc<client_ip::TrustedProxies>,
}

/// CORS from the allowlist: credentials allowed, so origins are always listed, never `*`.
/// Requests without an `Origin` (mobile apps, servers, curl) are not affected.
pub fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            middleware::X_REQUEST_ID,
        ])
        .expose_headers([
            middleware::X_REQUEST_ID,
            error::RATELIMIT,
            error::RATELIMIT_POLICY,
            header::RETRY_AFTER,
        ])
        .supports_credentials()
        // A browser request from another origin is refused outright (403), not merely left
        // without CORS headers: defence in depth for the cookie-carrying endpoints.
        .block_on_origin_mismatch(true)
        .max_age(settings.http.cors_max_age_seconds);
    for origin in settings.cors_origins() {
        cors = cors.allowed_origin(&origin);
    }
    cors
}

/// Registers every route under the base path.
pub fn configure(base_path: &str) -> impl FnOnce(&mut web::ServiceConfig) + '_ {
    move |cfg| {
        cfg.service(
            web::scope(base_path)
                .service(
                    web::scope("/auth")
                        .route("/signup", web::post().to(routes::auth::signup))
                        .route("/login", web::post().to(routes::auth::login))
                        .route("/refresh", web::post().to(routes::auth::refresh))
                        .route("/logout", web::post().to(routes::auth::logout))
                        .route("/logout-all", web::post().to(routes::auth::logout_all))
                        .route("/sessions", web::get().to(routes::account::sessions))
                        .route(
                            "/sessions/{id}",
                            web::delete().to(routes::account::revoke_session),
                        )
                        .route(
                            "/password/change",
                            web::post().to(routes::account::change_password),
                        )
                        .route(
                            "/password/forgot",
                            web::post().to(routes::lifecycle::forgot_password),
                        )
                        .route(
                            "/password/reset",
                            web::post().to(routes::lifecycle::reset_password),
                        )
                        .route(
                            "/email/verify",
                            web::post().to(routes::lifecycle::verify_email),
                        )
                        .route(
                            "/email/resend",
                            web::post().to(routes::lifecycle::resend_verification),
                        )
                        .route(
                            "/tokens/validate",
                            web::post().to(routes::lifecycle::validate_token),
                        ),
                )
                .service(web::resource("/me/events").route(web::get().to(routes::events::mine)))
                .service(
                    web::resource("/me")
                        .route(web::get().to(routes::me::get))
                        .route(web::patch().to(routes::account::update_me))
                        .route(web::delete().to(routes::account::delete_me)),
                )
                .service(
                    web::scope("/admin")
                        .route("/invitations", web::post().to(routes::admin::invite))
                        .route("/events", web::get().to(routes::events::all))
                        .route("/users", web::get().to(routes::admin::list_users))
                        .service(
                            web::resource("/users/{id}")
                                .route(web::get().to(routes::admin::get_user))
                                .route(web::patch().to(routes::admin::update_user))
                                .route(web::delete().to(routes::admin::delete_user)),
                        )
                        .route(
                            "/users/{id}/revoke-sessions",
                            web::post().to(routes::admin::revoke_sessions),
                        ),
                )
                .route(
                    "/.well-known/jwks.json",
                    web::get().to(routes::health::jwks),
                )
                .route("/health/live", web::get().to(routes::health::live))
                .route("/health/ready", web::get().to(routes::health::ready)),
        );
    }
}
