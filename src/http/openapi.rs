//! The OpenAPI 3 document, generated from the handlers' annotations: the routes registered in
//! [`super::configure`] are the routes documented, because both come from the same call.

use actix_web::App;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::error::FieldError;
use crate::http::cookies::{ONE_TIME_COOKIE, REFRESH_COOKIE};
use crate::http::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "authd",
        description = "Authentication service: signup, login, refresh-token rotation with reuse \
detection, sessions, email flows, invitations and user administration.\n\n\
Every error answers with one shape (`ApiError`); its `code` is stable. Access tokens are JWTs \
(`Authorization: Bearer`); the refresh token rides in the HttpOnly `refresh_token` cookie \
(browsers) or, with `tokenTransport: body`, in the JSON body (mobile and server clients)."
    ),
    components(schemas(ErrorBody, FieldError)),
    tags(
        (name = "auth", description = "Sign up, sign in, refresh, sign out"),
        (name = "sessions", description = "The user's own sessions"),
        (name = "password", description = "Change, forgot, reset"),
        (name = "email", description = "Verification and emailed tokens"),
        (name = "me", description = "The signed-in user's profile and audit log"),
        (name = "mfa", description = "Second factors (TOTP, recovery codes), the second step of a login, and re-authentication for sensitive actions"),
        (name = "federation", description = "Sign-in with other providers (OAuth 2.0 / OpenID Connect): the browser's round trip, native apps' ID tokens, linked identities"),
        (name = "admin", description = "User administration (role `admin`)"),
        (name = "webhooks", description = "Webhook endpoints on audit events and their delivery log (role `admin`); messages are signed as Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`)"),
        (name = "health", description = "Probes and the JWKS"),
    )
)]
struct ApiDoc;

/// Security schemes, and the answers every operation can give (shared, so each handler lists
/// only its own).
struct CommonAnswers;

const COMMON: [(&str, &str); 8] = [
    (
        "BadRequest",
        "`validation_failed`: malformed JSON, or a missing or invalid field or parameter \
         (`details` lists each)",
    ),
    (
        "HeadersTooLarge",
        "`headers_too_large`: the request headers exceed `http.max_header_bytes`",
    ),
    (
        "RequestTimeout",
        "`request_timeout`: the body did not arrive within `server.client_body_timeout_ms`",
    ),
    (
        "RateLimited",
        "`rate_limited`: too many requests; see `Retry-After` and the `RateLimit` headers",
    ),
    (
        "Internal",
        "`internal`: an unexpected failure (logged with the request id)",
    ),
    (
        "Unavailable",
        "`overloaded` (the password hasher's queue is full) or `unavailable` (the store or cache \
         is down); retry after `Retry-After`",
    ),
    (
        "PayloadTooLarge",
        "`payload_too_large`: the body exceeds `http.max_body_bytes`",
    ),
    (
        "UnsupportedMediaType",
        "`unsupported_media_type`: a body that is not JSON",
    ),
];

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(Ref::from_schema_name("ApiError")))),
        )
        .build()
}

/// Adds a response header (a string) to `response`, unless it documents it already.
fn add_header(response: &mut Response, name: &str, description: &str) {
    let header = HeaderBuilder::new()
        .schema(Schema::Object(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .build(),
        ))
        .description(Some(description))
        .build();
    response.headers.entry(name.to_string()).or_insert(header);
}

const REQUEST_ID: &str =
    "The request's id (a valid incoming `X-Request-Id` is kept, else a new UUID)";
const RETRY_AFTER: &str = "Seconds to wait before trying again";

/// What every bearer-authenticated operation may also answer 403 for.
const BEARER_FORBIDDEN: &str = "`mfa_enrollment_required`: `auth.mfa.required` covers the account \
and this session has no second factor yet (every endpoint but `/me`, `/me/mfa/...`, step-up and \
sign-out); `reauthentication_required` on sensitive actions (a factor, the password, deleting the \
account, admin changes when `auth.admin_reauthentication`) when the last sign-in is older than \
`auth.reauthentication_seconds` (an address change too without the password, and with it on an \
account with a second factor, which needs `aal` 2); admin routes: `forbidden` (not, or no longer, an unlocked admin)";

fn answer(name: &str) -> RefOr<Response> {
    RefOr::Ref(Ref::from_response_name(name))
}

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The access token from login, signup or refresh"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                REFRESH_COOKIE,
                "HttpOnly; set by login, signup and refresh; sent to /auth only",
            ))),
        );
        components.add_security_scheme(
            "one_time_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                ONE_TIME_COOKIE,
                "HttpOnly; set by POST /auth/tokens/validate",
            ))),
        );
        for (name, description) in COMMON {
            let mut response = error_response(description);
            match name {
                "RateLimited" => {
                    add_header(&mut response, "Retry-After", RETRY_AFTER);
                    add_header(
                        &mut response,
                        "RateLimit-Policy",
                        "The limit that applies (IETF draft-7), e.g. `10;w=60`",
                    );
                    add_header(
                        &mut response,
                        "RateLimit",
                        "What is left of it (IETF draft-7), e.g. `limit=10, remaining=0, reset=42`",
                    );
                }
                "Unavailable" => add_header(&mut response, "Retry-After", RETRY_AFTER),
                _ => {}
            }
            components
                .responses
                .insert(name.to_string(), RefOr::T(response));
        }
        components.responses.insert(
            "Forbidden".to_string(),
            RefOr::T(error_response(BEARER_FORBIDDEN)),
        );
        components.responses.insert(
            "Unauthorized".to_string(),
            RefOr::T(error_response(
                "`unauthorized` (no bearer token), `token_invalid`, `token_expired`; admin routes \
                 also answer 403 `forbidden`",
            )),
        );

        for response in components.responses.values_mut() {
            if let RefOr::T(response) = response {
                add_header(response, "X-Request-Id", REQUEST_ID);
            }
        }

        for (path, item) in openapi.paths.paths.iter_mut() {
            let admin_only = path.contains("/admin/");
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut operation.responses.responses;
                let add = |responses: &mut std::collections::BTreeMap<_, _>, status: &str, name| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| answer(name));
                };
                let has_parameters = operation
                    .parameters
                    .as_ref()
                    .is_some_and(|parameters| !parameters.is_empty());
                add(responses, "429", "RateLimited");
                add(responses, "431", "HeadersTooLarge");
                add(responses, "500", "Internal");
                add(responses, "503", "Unavailable");
                if operation.request_body.is_some() || has_parameters {
                    add(responses, "400", "BadRequest");
                }
                if operation.request_body.is_some() {
                    add(responses, "408", "RequestTimeout");
                    add(responses, "413", "PayloadTooLarge");
                    add(responses, "415", "UnsupportedMediaType");
                }
                let needs_bearer = operation.security.as_ref().is_some_and(|requirements| {
                    requirements.iter().any(|r| {
                        serde_json::to_value(r)
                            .ok()
                            .and_then(|v| v.get("bearer").cloned())
                            .is_some()
                    })
                });
                if needs_bearer {
                    add(responses, "401", "Unauthorized");
                    // A route's own 403 names its reason; the common ones apply to it too.
                    if let Some(RefOr::T(own)) = responses.get_mut("403") {
                        own.description = format!("{} Also: {BEARER_FORBIDDEN}.", own.description);
                    }
                    add(responses, "403", "Forbidden");
                } else if admin_only {
                    add(responses, "403", "Forbidden");
                }
                for response in responses.values_mut() {
                    if let RefOr::T(response) = response {
                        add_header(response, "X-Request-Id", REQUEST_ID);
                    }
                }
                // An optional body (`request_body = Option<T>`) may be left out, but when sent it
                // is the object, never JSON `null`: keep `required: false`, drop the null branch.
                if let Some(body) = operation.request_body.as_mut() {
                    for content in body.content.values_mut() {
                        drop_null_alternative(content);
                    }
                }
            }
        }
    }
}

fn is_null_schema(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == SchemaType::Type(Type::Null))
}

/// `oneOf: [null, X]` becomes `X`.
fn drop_null_alternative(content: &mut Content) {
    let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
        return;
    };
    if one_of.items.len() != 2 {
        return;
    }
    let mut rest = one_of.items.iter().filter(|item| !is_null_schema(item));
    if let (Some(only), None) = (rest.next(), rest.next()) {
        content.schema = Some(only.clone());
    }
}

/// The document for an app whose routes live under `base_path`.
pub fn document(base_path: &str) -> utoipa::openapi::OpenApi {
    let (_, document) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(super::configure(base_path))
        .split_for_parts();
    let mut document = document;
    CommonAnswers.modify(&mut document);
    document
}
