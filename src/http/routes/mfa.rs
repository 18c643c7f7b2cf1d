//! Second factors: `/auth/mfa/verify` (a login's second step), `/auth/reauthenticate` (step-up),
//! the caller's own factors under `/me/mfa`, and an admin's view and reset of a user's.

use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{access_body, token_response, SignedInBody, TokenBody, TokenTransport};
use crate::domain::claims::Caller;
use crate::error::AppError;
use crate::flows::mfa::SecondFactor;
use crate::http::error::ErrorBody;
use crate::http::extractors::{AdminUser, AuthUser, Client, EnrollingUser, JsonBody, PathParams};
use crate::http::AppState;
use crate::store::{FactorChoice, MfaStatus};

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MfaVerifyRequest {
    /// From the login's answer.
    #[schema(required = true, min_length = 1)]
    mfa_token: String,
    /// A 6-digit code of the authenticator app; or give `recoveryCode`.
    #[schema(example = "123456")]
    code: Option<String>,
    /// One of the recovery codes (each works once).
    #[schema(example = "abcd-efgh-ijkl-mnop")]
    recovery_code: Option<String>,
    /// A passkey's answer (`PublicKeyCredential` JSON) to the options of
    /// `POST /auth/mfa/passkey-options`.
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
    token_transport: TokenTransport,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ReauthenticateRequest {
    /// Required unless a passkey answers (`ceremonyId` and `credential`).
    password: String,
    /// Required with the password when the account has a second factor (or `recoveryCode`).
    code: Option<String>,
    recovery_code: Option<String>,
    /// From `POST /auth/reauthenticate/passkey-options`, with the passkey's `credential`.
    ceremony_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TotpConfirmRequest {
    /// The authenticator's current code, which proves it holds the secret.
    #[schema(
        required = true,
        min_length = 6,
        max_length = 6,
        pattern = "^[0-9]{6}$",
        example = "123456"
    )]
    code: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaStatusBody {
    /// `auth.mfa.required` covers this account: until it has a factor (and the session has
    /// given it), every call but enrolment, step-up, `/me` and sign-out answers 403
    /// `mfa_enrollment_required`.
    required: bool,
    totp: TotpStatusBody,
    /// Registered passkeys (`GET /me/mfa/passkeys` lists them).
    passkeys: u32,
    /// Unused recovery codes.
    recovery_codes_left: u32,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpStatusBody {
    enabled: bool,
    #[serde(serialize_with = "super::optional_timestamp")]
    #[schema(value_type = Option<String>)]
    confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl MfaStatusBody {
    fn new(factors: MfaStatus, required: bool) -> Self {
        MfaStatusBody {
            required,
            totp: TotpStatusBody {
                enabled: factors.enabled(),
                confirmed_at: factors.totp_confirmed_at,
            },
            passkeys: factors.passkeys,
            recovery_codes_left: factors.recovery_codes_left,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrolmentBody {
    /// Base32, for typing into an authenticator app.
    secret: String,
    /// `otpauth://totp/...`, for a QR code.
    otpauth_uri: String,
    /// Seconds left to confirm with a first code.
    expires_in: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpConfirmedBody {
    /// Shown this once: each works once, in place of a code.
    recovery_codes: Vec<String>,
    /// The session now counts the new factor (`aal` 2): use this token from here on.
    #[serde(flatten)]
    token: TokenBody,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodesBody {
    recovery_codes: Vec<String>,
}

/// Second step of a sign-in: a code, a recovery code or a passkey
#[utoipa::path(
    tag = "mfa",
    request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Signed in at level 2; refresh cookie set", body = SignedInBody,
            headers(("Set-Cookie" = String, description = "`refresh_token`: HttpOnly, SameSite=Strict, Path=/auth"))),
        (status = 401, description = "`invalid_mfa_code` (wrong, malformed or already used) or `mfa_token_invalid` (expired, used, out of attempts: sign in again)", body = ErrorBody),
    )
)]
#[post("/mfa/verify")]
pub async fn verify(
    state: web::Data<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<MfaVerifyRequest>,
) -> Result<HttpResponse, AppError> {
    if body.mfa_token.is_empty() {
        return Err(AppError::validation("mfaToken", "is required"));
    }
    let proof = SecondFactor::from_fields(body.code, body.recovery_code, body.credential)?
        .ok_or_else(|| {
            AppError::validation("code", "is required (or give recoveryCode or credential)")
        })?;
    let (user, tokens) = state
        .mfa
        .verify_login(&body.mfa_token, proof, &client)
        .await?;
    Ok(token_response(
        HttpResponse::Ok(),
        &state,
        Some(&user),
        tokens,
        body.token_transport,
    ))
}

/// Step up: prove it is still you
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    request_body = ReauthenticateRequest,
    responses(
        (status = 200, description = "The session proved itself again: a new access token (`auth_time` now)", body = TokenBody),
        (status = 400, description = "`validation_failed`: a wrong password, or a missing second factor", body = ErrorBody),
        (status = 401, description = "`invalid_mfa_code`", body = ErrorBody),
    )
)]
#[post("/reauthenticate")]
pub async fn reauthenticate(
    state: web::Data<AppState>,
    Client(client): Client,
    EnrollingUser(Caller { claims, .. }): EnrollingUser,
    body: Result<JsonBody<ReauthenticateRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    let proof = SecondFactor::from_fields(body.code, body.recovery_code, body.credential)?;
    let access = state
        .mfa
        .reauthenticate(
            &claims,
            &body.password,
            proof,
            body.ceremony_id.as_deref(),
            &client,
        )
        .await?;
    Ok(HttpResponse::Ok().json(access_body(access)))
}

/// The caller's second factors
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's second factors", body = MfaStatusBody))
)]
#[get("/me/mfa")]
pub async fn my_factors(
    state: web::Data<AppState>,
    EnrollingUser(caller): EnrollingUser,
) -> Result<HttpResponse, AppError> {
    let factors = state.mfa.status(caller.user.id).await?;
    let required = state.mfa_requirement.covers(caller.user.role);
    Ok(HttpResponse::Ok().json(MfaStatusBody::new(factors, required)))
}

/// Start enrolling an authenticator app (TOTP)
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Enrolment started: add the secret to an authenticator app, then confirm with a code", body = TotpEnrolmentBody),
        (status = 409, description = "`mfa_already_enabled`", body = ErrorBody),
    )
)]
#[post("/me/mfa/totp")]
pub async fn begin_totp(
    state: web::Data<AppState>,
    EnrollingUser(caller): EnrollingUser,
) -> Result<HttpResponse, AppError> {
    let enrolment = state.mfa.begin_totp(&caller.claims, &caller.user).await?;
    Ok(HttpResponse::Created().json(TotpEnrolmentBody {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
        expires_in: enrolment.expires_in,
    }))
}

/// Confirm the authenticator app with a code
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    request_body = TotpConfirmRequest,
    responses(
        (status = 200, description = "TOTP is on; the recovery codes are shown this once", body = TotpConfirmedBody),
        (status = 400, description = "`validation_failed`: not the authenticator's current code", body = ErrorBody),
        (status = 404, description = "`not_found`: no enrolment waiting (or it expired)", body = ErrorBody),
    )
)]
#[post("/me/mfa/totp/confirm")]
pub async fn confirm_totp(
    state: web::Data<AppState>,
    Client(client): Client,
    EnrollingUser(caller): EnrollingUser,
    body: Result<JsonBody<TotpConfirmRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    if body.code.is_empty() {
        return Err(AppError::validation("code", "is required"));
    }
    let confirmed = state
        .mfa
        .confirm_totp(&caller.claims, &caller.user, &body.code, &client)
        .await?;
    Ok(HttpResponse::Ok().json(TotpConfirmedBody {
        recovery_codes: confirmed.recovery_codes,
        token: access_body(confirmed.access),
    }))
}

/// Remove the authenticator app
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "TOTP and the recovery codes are gone"),
        (status = 404, description = "`not_found`: TOTP is not on", body = ErrorBody),
    )
)]
#[delete("/me/mfa/totp")]
pub async fn remove_totp(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(caller): AuthUser,
) -> Result<HttpResponse, AppError> {
    state
        .mfa
        .remove(&caller.claims, &caller.user, FactorChoice::Totp, &client)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace the recovery codes
#[utoipa::path(
    tag = "mfa",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A new set; the old codes no longer work", body = RecoveryCodesBody),
        (status = 404, description = "`not_found`: no second factor", body = ErrorBody),
    )
)]
#[post("/me/mfa/recovery-codes")]
pub async fn regenerate_recovery_codes(
    state: web::Data<AppState>,
    Client(client): Client,
    AuthUser(caller): AuthUser,
) -> Result<HttpResponse, AppError> {
    let recovery_codes = state
        .mfa
        .regenerate_recovery_codes(&caller.claims, &caller.user, &client)
        .await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesBody { recovery_codes }))
}

/// A user's second factors
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user's second factors", body = MfaStatusBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
    )
)]
#[get("/users/{id}/mfa")]
pub async fn user_factors(
    state: web::Data<AppState>,
    AdminUser(_admin): AdminUser,
    id: Result<PathParams<Uuid>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    let (user, factors) = state.mfa.status_of_user(id).await?;
    let required = state.mfa_requirement.covers(user.role);
    Ok(HttpResponse::Ok().json(MfaStatusBody::new(factors, required)))
}

/// Reset a user's second factors
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 204, description = "The user's second factors and recovery codes are gone; they are told by mail"),
        (status = 400, description = "`validation_failed`: the caller's own account (use `/me/mfa`)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user, or no second factor", body = ErrorBody),
    )
)]
#[delete("/users/{id}/mfa")]
pub async fn reset_user(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    id: Result<PathParams<Uuid>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    state.mfa.admin_reset(&admin, id, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}
