//! `/admin/webhooks`: webhook endpoints and their delivery log, for unlocked admins only; 404
//! `feature_disabled` when `webhooks.enabled` is off.

use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::AppError;
use crate::http::error::ErrorBody;
use crate::http::extractors::{AdminUser, Client, JsonBody, PathParams, QueryParams};
use crate::http::AppState;
use crate::store::{WebhookDelivery, WebhookEndpoint};

/// A webhook endpoint (never its secret).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointBody {
    id: Uuid,
    url: String,
    description: Option<String>,
    /// Audit event kinds it receives, or `["*"]` for every kind.
    events: Vec<String>,
    /// False for an endpoint that has left `webhooks.endpoints`: nothing is queued for it.
    enabled: bool,
    #[schema(value_type = EndpointSourceName)]
    source: &'static str,
    #[serde(serialize_with = "super::timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
}

/// `source` values: `webhooks.endpoints` or this API.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum EndpointSourceName {
    Config,
    Api,
}

impl From<WebhookEndpoint> for WebhookEndpointBody {
    fn from(endpoint: WebhookEndpoint) -> Self {
        WebhookEndpointBody {
            id: endpoint.id,
            url: endpoint.url,
            description: endpoint.description,
            events: endpoint.events,
            enabled: endpoint.enabled,
            source: endpoint.source.as_str(),
            created_at: endpoint.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookListBody {
    endpoints: Vec<WebhookEndpointBody>,
}

/// List webhook endpoints
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every endpoint, oldest first", body = WebhookListBody),
        (status = 404, description = "`feature_disabled`: webhooks are off (`webhooks.enabled`)", body = ErrorBody),
    )
)]
#[get("/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    _admin: AdminUser,
) -> Result<HttpResponse, AppError> {
    let endpoints = state.webhooks.list().await?;
    Ok(HttpResponse::Ok().json(WebhookListBody {
        endpoints: endpoints.into_iter().map(Into::into).collect(),
    }))
}

/// Fields left out are empty, so that each is refused by its own name.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https://...` (plain http only with `webhooks.allow_insecure_targets`), to a public
    /// address unless `webhooks.allow_private_targets`.
    #[schema(
        required = true,
        example = "https://hooks.example.com/authd",
        max_length = 2048
    )]
    url: String,
    /// Audit event kinds (e.g. `signup`, `login_failed`), or `["*"]` for every kind.
    #[schema(required = true, example = json!(["signup", "login_failed"]))]
    events: Vec<String>,
    #[schema(max_length = 200)]
    description: Option<String>,
}

/// A new endpoint, with the secret its receiver verifies signatures with: shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhookBody {
    #[serde(flatten)]
    endpoint: WebhookEndpointBody,
    /// `whsec_` + base64 of 32 bytes (Standard Webhooks); not shown again.
    secret: String,
}

/// Register a webhook endpoint
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Registered; the secret is shown this once", body = CreatedWebhookBody),
        (status = 404, description = "`feature_disabled`: webhooks are off (`webhooks.enabled`)", body = ErrorBody),
    )
)]
#[post("/webhooks")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    body: Result<JsonBody<CreateWebhookRequest>, AppError>,
) -> Result<HttpResponse, AppError> {
    let JsonBody(body) = body?;
    let created = state
        .webhooks
        .create(
            &admin,
            &client,
            &body.url,
            &body.events,
            body.description.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Created().json(CreatedWebhookBody {
        endpoint: created.endpoint.into(),
        secret: created.secret,
    }))
}

/// Remove a webhook endpoint
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted, with its delivery log; nothing more is sent to it"),
        (status = 404, description = "`not_found`; `feature_disabled` when webhooks are off", body = ErrorBody),
        (status = 409, description = "`endpoint_configured`: it comes from `webhooks.endpoints`; remove it there", body = ErrorBody),
    )
)]
#[delete("/webhooks/{id}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    Client(client): Client,
    AdminUser(admin): AdminUser,
    id: Result<PathParams<Uuid>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    state.webhooks.delete(&admin, &client, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One delivery of an event to an endpoint.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryBody {
    id: Uuid,
    endpoint_id: Uuid,
    /// The message id (`webhook-id`, the payload's `id`): the audit event's, the same at every
    /// attempt.
    event_id: Uuid,
    /// The audit event's kind (the payload's `type`).
    event_type: String,
    #[schema(value_type = DeliveryStatusName)]
    status: String,
    /// Attempts made so far.
    attempts: u32,
    /// The HTTP status of the last answer, if the endpoint answered.
    last_status: Option<u16>,
    /// Why the last attempt failed.
    last_error: Option<String>,
    /// The body sent (signed anew at each attempt).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    #[serde(serialize_with = "super::timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
    /// The next attempt while pending; once sent or dead, when its last attempt ended.
    #[serde(serialize_with = "super::timestamp")]
    next_attempt_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "super::optional_timestamp")]
    #[schema(value_type = Option<String>)]
    delivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `status` values.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum DeliveryStatusName {
    Pending,
    Sent,
    Dead,
}

impl From<WebhookDelivery> for DeliveryBody {
    fn from(delivery: WebhookDelivery) -> Self {
        DeliveryBody {
            id: delivery.id,
            endpoint_id: delivery.endpoint_id,
            event_id: delivery.event_id,
            event_type: delivery.event_kind,
            status: delivery.status,
            attempts: delivery.attempts,
            last_status: delivery.last_status,
            last_error: delivery.last_error,
            payload: serde_json::from_str(&delivery.payload).unwrap_or_default(),
            created_at: delivery.created_at,
            next_attempt_at: delivery.next_attempt_at,
            delivered_at: delivery.delivered_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryListBody {
    deliveries: Vec<DeliveryBody>,
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// An endpoint's delivery log
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), DeliveryQuery),
    responses(
        (status = 200, description = "The endpoint's deliveries, newest first", body = DeliveryListBody),
        (status = 404, description = "`not_found`; `feature_disabled` when webhooks are off", body = ErrorBody),
    )
)]
#[get("/webhooks/{id}/deliveries")]
pub async fn webhook_deliveries(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: Result<PathParams<Uuid>, AppError>,
    query: Result<QueryParams<DeliveryQuery>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams(id) = id?;
    let QueryParams(query) = query?;
    let (deliveries, next_cursor) = state
        .webhooks
        .deliveries(id, query.cursor.as_deref(), query.limit)
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryListBody {
        deliveries: deliveries.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Retry a dead delivery
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Endpoint id"),
        ("deliveryId" = Uuid, Path, description = "Delivery id"),
    ),
    responses(
        (status = 200, description = "Queued again, due now, with a full series of attempts", body = DeliveryBody),
        (status = 404, description = "`not_found`; `feature_disabled` when webhooks are off", body = ErrorBody),
        (status = 409, description = "`delivery_not_dead`: only a dead delivery is retried", body = ErrorBody),
    )
)]
#[post("/webhooks/{id}/deliveries/{deliveryId}/retry")]
pub async fn retry_delivery(
    state: web::Data<AppState>,
    _admin: AdminUser,
    ids: Result<PathParams<(Uuid, Uuid)>, AppError>,
) -> Result<HttpResponse, AppError> {
    let PathParams((id, delivery_id)) = ids?;
    let delivery = state.webhooks.retry(id, delivery_id).await?;
    Ok(HttpResponse::Ok().json(DeliveryBody::from(delivery)))
}
