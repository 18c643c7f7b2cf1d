//! Passkeys: registration and management under `/me/mfa/passkeys`, the options of a login's
//! second step and of a step-up, and passwordless sign-in under `/auth/passkey`. Options are
//! what the browser hands `navigator.credentials.create/get`; answers are the credential's JSON
//! (`PublicKeyCredential.toJSON()`).

use actix_web::{delete, get, patch, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{token_response, SignedInBody, TokenTransport};
use crate::domain::claims::Caller;
use crate::error::AppError;
use crate::flows::passkeys::CeremonyStarted;
use crate::http::error::ErrorBody;
use crate::http::extractors::{AuthUser, Client, EnrollingUser, JsonBody, PathParams};
use crate::http::AppState;
use crate::store::{FactorChoice, StoredPasskey};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CeremonyBody {
    /// Send it back with the credential.
    ceremony_id: String,
    /// For `navigator.credentials.create` (registration) or `.get` (authentication).
    #[schema(value_type = Object)]
    options: serde_json::Value,
}

impl From<CeremonyStarted> for CeremonyBody {
    fn from(started: CeremonyStarted) -> Self {
        CeremonyBody {
            ceremony_id: started.ceremony_id,
            options: started.options,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptionsBody {
    #[schema(value_type = Object)]
    options: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyBody {
    id: Uuid,
    name: String,
    #[serde(serialize_with = "super::timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "super::optional_timestamp")]
    #[schema(value_type = Option<String>)]
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<StoredPasskey> for PasskeyBody {
    fn from(passkey: StoredPasskey) -> Self {
        PasskeyBody {
            id: passkey.id,
            name: passkey.name,
            created_at: passkey.created_at,
            last_used_at: passkey.last_used_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyRegisteredBody {
    passkey: PasskeyBody,
    /// Only when the passkey is the account's first factor: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterPasskeyRequest {
    #[schema(required = true, min_length = 1)]
    ceremony_id: String,
    /// At most 100 characters, no control characters; default "Passkey".
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    name: Option<String>,
    /// The authenticator's answer (`PublicKeyCredential` JSON of `navigator.credentials.create`).
    #[schema(required = true, value_type = Object)]
    credential: serde_json::Value,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RenamePasskeyRequest {
    /// At most 100 characters, no control characters; `null` or empty = "Passkey".
    #[schema(
        required = true,
        value_type = Option<String>,
        nullable,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    #[serde(deserialize_with = "super::present")]
    name: Option<Option<String>>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MfaPasskeyOptionsRequest {
    #[schema(required = true, min_length = 1)]
    mfa_token: String,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordlessOptionsRequest {
    /// Leave out to let the authenticator offer the passkeys it holds (nothing in the answer
    /// depends on who asks); give it to list the passkeys of that address's account.
    #[schema(format = Email, example = "ada@example.com")]
    email: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordlessLoginRequest {
    #[schema(required = true, min_length = 1)]
    ceremony_id: String,
    #[schema(required = true, value_type = Object)]
    credential: serde_json::Value,
    token_transport: TokenTransport,
}

/// Options to register a passkey
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Registration options and the ceremony id", body = CeremonyBody),
    )
)]
#[post("/me/mfa/passkey-options")]
pub async fn registration_options(
    state: web::Data<AppState>,
    EnrollingUser(caller): EnrollingUser,
) -> Result<HttpResponse, AppError> {
    let started = state
        .mfa
        .begin_passkey_registration(&caller.claims, &caller.user)
        .await?;
    Ok(HttpResponse::Ok().json(CeremonyBody::from(started)))
}

/// Register a passkey
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    request_body = RegisterPasskeyRequest,
    responses(
        (status = 201, description = "Registered; recovery codes when it is the first factor", body = PasskeyRegisteredBody),
        (status = 400, description = "`validation_failed`: a stale ceremony, an answer that does not verify, a passkey registered already", body = ErrorBody),
    )
)]
#[post("/me/mfa/passkeys")]
pub async fn register(
    state: web::Data<AppState>,
    Client(client): Client,
    EnrollingUser(caller): EnrollingUser,
    body: Result<JsonBody<RegisterPasskeyRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    let registered = state
        .mfa
        .finish_passkey_registration(
            &caller.claims,
            &caller.user,
            &body.ceremony_id,
            body.name.as_deref(),
            body.credential,
            &client,
        )
        .await?;
    Ok(HttpResponse::Created().json(PasskeyRegisteredBody {
        passkey: registered.passkey.into(),
        recovery_codes: registered.recovery_codes,
    }))
}

/// The caller's passkeys
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's passkeys, oldest first", body = [PasskeyBody]))
)]
#[get("/me/mfa/passkeys")]
pub async fn list(
    state: web::Data<AppState>,
    EnrollingUser(caller): EnrollingUser,
) -> Result<HttpResponse, AppError> {
    let passkeys: Vec<PasskeyBody> = state
        .mfa
        .passkeys(caller.user.id)
        .await?
        .into_iter()
        .map(PasskeyBody::from)
        .collect();
    Ok(HttpResponse::Ok().json(passkeys))
}

/// Rename a passkey
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Passkey id")),
    request_body = RenamePasskeyRequest,
    responses(
        (status = 200, description = "Renamed", body = PasskeyBody),
        (status = 404, description = "`not_found`: no such passkey of the caller", body = ErrorBody),
    )
)]
#[patch("/me/mfa/passkeys/{id}")]
pub async fn rename(
    state: web::Data<AppState>,
    AuthUser(caller): AuthUser,
    id: Result<PathParams<Uuid>, AppError>,
    body: Result<JsonBody<RenamePasskeyRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    let JsonBody(body) = body?;
    // The one field of this update: leaving it out is a mistake, not "rename to the default".
    let name = body
        .name
        .ok_or_else(|| AppError::validation("name", "is required"))?;
    let passkey = state
        .mfa
        .rename_passkey(caller.user.id, id, name.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(PasskeyBody::from(passkey)))
}

/// Remove a passkey
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Passkey id")),
    responses(
        (status = 204, description = "Removed; the recovery codes go with the last factor"),
        (status = 404, description = "`not_found`: no such passkey of the caller", body = ErrorBody),
        (status = 409, description = "`last_sign_in_method`: the account has no password, other passkey or linked identity", body = ErrorBody),
    )
)]
#[delete("/me/mfa/passkeys/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(caller): AuthUser,
    id: Result<PathParams<Uuid>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    let which = FactorChoice::Passkey(id);
    state
        .mfa
        .remove(&caller.claims, &caller.user, which, &client)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Options for a passkey as the second step
#[utoipa::path(
    tag = "mfa",
    request_body = MfaPasskeyOptionsRequest,
    responses(
        (status = 200, description = "Options for the login's second step; answer with `POST /auth/mfa/verify` and `credential`", body = OptionsBody),
        (status = 401, description = "`mfa_token_invalid`", body = ErrorBody),
        (status = 404, description = "`not_found`: the account has no passkey", body = ErrorBody),
    )
)]
#[post("/mfa/passkey-options")]
pub async fn second_factor_options(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<MfaPasskeyOptionsRequest>,
) -> Result<HttpResponse, AppError> {
    let options = state
        .mfa
        .begin_second_factor_passkey(&body.mfa_token)
        .await?;
    Ok(HttpResponse::Ok().json(OptionsBody { options }))
}

/// Options for a passkey step-up
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Options to step up with a passkey; answer with `POST /auth/reauthenticate`, `ceremonyId` and `credential`", body = CeremonyBody),
        (status = 404, description = "`not_found`: the account has no passkey", body = ErrorBody),
    )
)]
#[post("/reauthenticate/passkey-options")]
pub async fn step_up_options(
    state: web::Data<AppState>,
    EnrollingUser(Caller { user, .. }): EnrollingUser,
) -> Result<HttpResponse, AppError> {
    let started = state.mfa.begin_step_up_passkey(&user).await?;
    Ok(HttpResponse::Ok().json(CeremonyBody::from(started)))
}

/// Options for signing in with a passkey
#[utoipa::path(
    tag = "auth",
    request_body(content = Option<PasswordlessOptionsRequest>, description = "No body, `{}` or no `email`: options for any passkey the authenticator keeps"),
    responses((status = 200, description = "Options for signing in with a passkey: without `email`, none listed (the authenticator offers its own); with it, the same shape whether or not the address has one", body = CeremonyBody))
)]
#[post("/passkey/options")]
pub async fn passwordless_options(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<PasswordlessOptionsRequest>,
) -> Result<HttpResponse, AppError> {
    if let Some(email) = &body.email {
        crate::domain::email::EmailAddress::parse(email)
            .map_err(|e| AppError::validation("email", e.message()))?;
    }
    let started = state.mfa.begin_passwordless(body.email.as_deref()).await?;
    Ok(HttpResponse::Ok().json(CeremonyBody::from(started)))
}

/// Sign in with a passkey
#[utoipa::path(
    tag = "auth",
    request_body = PasswordlessLoginRequest,
    responses(
        (status = 200, description = "Signed in at level 2 (`amr` `hwk` or `swk`); refresh cookie set", body = SignedInBody,
            headers(("Set-Cookie" = String, description = "`refresh_token`: HttpOnly, SameSite=Strict, Path=/auth"))),
        (status = 401, description = "`invalid_credentials`: the assertion, the ceremony or the account does not check out", body = ErrorBody),
    )
)]
#[post("/passkey/login")]
pub async fn passwordless_login(
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<PasswordlessLoginRequest>,
) -> Result<HttpResponse, AppError> {
    let (user, tokens) = state
        .mfa
        .finish_passwordless(&body.ceremony_id, body.credential, &client)
        .await?;
    Ok(token_response(
        HttpResponse::Ok(),
        &state,
        Some(&user),
        tokens,
        body.token_transport,
    ))
}
