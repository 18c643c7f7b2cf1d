//! Middleware: the request context (request id, error shape, access log) and per-IP rate limits.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tracing::Instrument;
use uuid::Uuid;

use super::client_ip::client_ip;
use super::connections::ConnectionWatch;
use super::error::{framework_error, ErrorBody, RATELIMIT, RATELIMIT_POLICY};
use super::AppState;
use crate::actors::rate_limiter::CheckRequest;
use crate::error::AppError;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Marks a HEAD request, routed as GET: the few GETs that act (a provider sign-in's start and
/// callback) answer it with 405 instead of acting for an answer nobody reads (a link checker's
/// or a prefetcher's HEAD would use up the sign-in).
#[derive(Debug, Clone, Copy)]
pub struct HeadRequest;

/// The id of the current request, as answered in `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// An incoming id is kept when it is short and plain enough to log safely.
fn incoming_request_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(X_REQUEST_ID)?.to_str().ok()?;
    let plain = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| value.to_string())
}

/// Bytes of the URI and the headers (names and values), as the client sent them.
fn head_bytes(req: &ServiceRequest) -> usize {
    let uri = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    req.headers().iter().fold(uri, |sum, (name, value)| {
        sum + name.as_str().len() + value.len()
    })
}

/// Inside CORS: refuses a request that changes something (not GET, HEAD or OPTIONS) when the
/// browser says another site sent it (`Sec-Fetch-Site: cross-site`) and it carries no `Origin`
/// for CORS to judge. Browsers send `Origin` on such requests, and the refresh cookie is
/// SameSite=Strict, so this only stands in for them if either ever fails; apps send neither. A
/// provider's form post to the callback is left to the callback, which answers with a redirect.
pub async fn refuse_cross_site_without_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && !super::provider_form_post(req.method(), req.path());
    let headers = req.headers();
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if changes && cross_site && !headers.contains_key(actix_web::http::header::ORIGIN) {
        return Ok(req
            .error_response(AppError::CrossSite)
            .map_into_boxed_body());
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Inside CORS (so that a browser can read the answer): refuses a request whose URI and headers
/// exceed `http.max_header_bytes` with 431, before anything reads them.
pub async fn refuse_oversized_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let max_header_bytes = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.max_header_bytes);
    match max_header_bytes {
        Some(limit) if head_bytes(&req) > limit => Ok(req
            .error_response(AppError::HeadersTooLarge { limit })
            .map_into_boxed_body()),
        _ => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

/// Outermost layer: assigns the request id, renders every error in the one shape, logs one line
/// per request (never a body, a query string, a token or a secret), answers HEAD wherever GET is
/// answered, and tells the connection's watchdog that a request is being handled.
pub async fn request_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = incoming_request_id(&req).unwrap_or_else(|| Uuid::new_v4().to_string());
    let method = req.method().clone();
    // HEAD is GET without the body (RFC 9110 9.3.2): routed as GET, and actix-http, which saw
    // the request's own method, sends the head of the answer only.
    if method == Method::HEAD {
        req.head_mut().method = Method::GET;
        req.extensions_mut().insert(HeadRequest);
    }
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let started = Instant::now();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );

    let _active = req
        .conn_data::<ConnectionWatch>()
        .map(ConnectionWatch::request_started);
    // Inner layers answer errors as responses (`req.error_response`), never as `Err`, so that
    // they reach this point with their request and can be shaped. (Cloning the request here to
    // cover an `Err` would break routing, which needs the only reference to it.)
    let mut response = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();
    if response.status().is_client_error() || response.status().is_server_error() {
        response = render_error(response, &request_id);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    protective_headers(response.headers_mut());

    let status = response.status().as_u16();
    // The pattern, not the path: ids in paths must not become metric labels.
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let elapsed = started.elapsed();
    crate::metrics::http_request(method.as_str(), &route, status, elapsed);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    tracing::info!(parent: &span, status, route = %route, latency_ms, "request served");
    Ok(response)
}

/// Answers carry tokens, accounts and sessions: no cache (a browser's, a proxy's) may keep them
/// unless a route says otherwise (the JWKS does), and no browser may sniff a JSON answer into
/// something else or frame a page of this origin.
fn protective_headers(headers: &mut actix_web::http::header::HeaderMap) {
    use actix_web::http::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn render_error(response: ServiceResponse<BoxBody>, request_id: &str) -> ServiceResponse<BoxBody> {
    let mut status = response.status();
    let error = response.response().error();
    let json = if let Some(app_error) = error.and_then(|e| e.as_error::<AppError>()) {
        match app_error {
            AppError::Internal(cause) => tracing::error!(%cause, "internal error"),
            AppError::Unavailable(cause) => tracing::warn!(%cause, "backing service unavailable"),
            _ => {}
        }
        let message = app_error.to_string();
        let mut body = ErrorBody::new(status, app_error.code(), &message, request_id);
        body.details = app_error.details();
        serde_json::to_vec(&body)
    } else if let Some(refusal) = error.and_then(|e| e.as_error::<actix_cors::CorsError>()) {
        status = StatusCode::FORBIDDEN;
        let (code, message) = cors_refusal(refusal);
        serde_json::to_vec(&ErrorBody::new(status, code, &message, request_id))
    } else {
        if status.is_server_error() {
            if let Some(cause) = error {
                tracing::error!(%cause, "framework error");
            }
        }
        let (code, message) = framework_error(status);
        serde_json::to_vec(&ErrorBody::new(status, code, message, request_id))
    };
    let json = json.unwrap_or_default();
    let (request, mut response) = response.into_parts();
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.remove(CONTENT_LENGTH);
    ServiceResponse::new(request, response.set_body(BoxBody::new(json)))
}

/// What a browser's developer reads when CORS refuses a request: which part was refused, and
/// what would be allowed.
fn cors_refusal(refusal: &actix_cors::CorsError) -> (&'static str, String) {
    use actix_cors::CorsError;
    let names = |names: Vec<&str>| names.join(", ");
    match refusal {
        CorsError::MethodNotAllowed => (
            "cors_method_not_allowed",
            format!(
                "this method is not allowed from a browser; allowed: {}",
                names(super::CORS_METHODS.iter().map(|m| m.as_str()).collect())
            ),
        ),
        CorsError::HeadersNotAllowed => (
            "cors_header_not_allowed",
            format!(
                "a requested header is not allowed from a browser; allowed: {}",
                names(super::CORS_HEADERS.iter().map(|h| h.as_str()).collect())
            ),
        ),
        _ => (
            "origin_not_allowed",
            "this origin is not allowed to call the API".to_string(),
        ),
    }
}

/// The route a request will be routed to, as its pattern without the base path (`/auth/login`,
/// `/admin/users/{id}`), or `unmatched`. Routing runs after this middleware, so the pattern is
/// looked up here the way the router will match it: on the percent-decoded path. Keying limits on
/// the raw path would give `/auth/%6Cogin` a bucket of its own while it still reaches login.
fn route_pattern(req: &ServiceRequest, base_path: &str) -> String {
    let decoded = req.match_info().as_str();
    match req.resource_map().match_pattern(decoded) {
        Some(pattern) => pattern
            .strip_prefix(base_path)
            .map(str::to_string)
            .unwrap_or(pattern),
        None => "unmatched".to_string(),
    }
}

/// Per-IP limits on everything but health checks, and per-route limits on credential endpoints.
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let route = route_pattern(&req, &state.base_path);
    if route.starts_with("/health/") || route == "/metrics" {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let ip = client_ip(req.request());
    let verdict = match state.rate_limiter.send(CheckRequest { ip, route }).await {
        Ok(verdict) => verdict,
        Err(mailbox) => Err(AppError::from(mailbox)),
    };
    let headers = match verdict {
        Ok(headers) => headers,
        Err(refusal) => return Ok(req.error_response(refusal).map_into_boxed_body()),
    };
    let mut response = next.call(req).await?.map_into_boxed_body();
    // An answer that describes a limit of its own (the account's login throttling) keeps it.
    let own_limit = response.headers().contains_key(RATELIMIT);
    if let (Some(headers), false) = (headers, own_limit) {
        let response_headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&headers.policy) {
            response_headers.insert(RATELIMIT_POLICY, value);
        }
        if let Ok(value) = HeaderValue::from_str(&headers.state) {
            response_headers.insert(RATELIMIT, value);
        }
    }
    Ok(response)
}
