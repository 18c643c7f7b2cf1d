//! Webhook endpoints and their delivery log, for admins (`/admin/webhooks`), and the endpoints of
//! the configuration, stored at start. Deliveries themselves are queued by the audit log and sent
//! by the dispatcher actor.

use std::sync::Arc;

use actix::Addr;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::actors::webhooks::{check_target, sealing_label, WebhookDispatcher};
use crate::actors::Wake;
use crate::config::{Secret, WebhookEndpointSettings, WebhookSettings};
use crate::domain::client::ClientContext;
use crate::domain::user::User;
use crate::domain::webhooks::{shown_url, SigningSecret, TargetPolicy, ALL_EVENTS};
use crate::error::AppError;
use crate::flows::audit::{Audit, EventKind};
use crate::flows::pages::{checked_limit, decode_cursor, encode_cursor};
use crate::store::{
    DeliveryPage, EndpointSource, NewWebhookEndpoint, Store, WebhookDelivery, WebhookEndpoint,
};

/// The longest URL an endpoint may have.
const MAX_URL_LENGTH: usize = 2048;
/// The longest description.
const MAX_DESCRIPTION_LENGTH: usize = 200;

/// An endpoint just registered, with its secret: shown this once, never again.
pub struct CreatedEndpoint {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// What an endpoint is to receive: known audit event kinds, without repeats, or `*` alone.
pub fn checked_events(events: &[String]) -> Result<Vec<String>, String> {
    if events.is_empty() {
        return Err("must list at least one audit event kind, or \"*\"".into());
    }
    let mut checked: Vec<String> = Vec::new();
    for event in events {
        let event = event.trim();
        if event != ALL_EVENTS && EventKind::parse(event).is_none() {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(format!(
                "{event:?} is not an audit event kind (one of {}, or \"*\")",
                known.join(", ")
            ));
        }
        if !checked.iter().any(|e| e == event) {
            checked.push(event.to_string());
        }
    }
    if checked.iter().any(|e| e == ALL_EVENTS) {
        return Ok(vec![ALL_EVENTS.to_string()]);
    }
    Ok(checked)
}

/// Shown to admins beside the URL: the rule of every text people choose to be shown (no
/// text-direction characters that would make it read as something else).
fn checked_description(description: Option<&str>) -> Result<Option<String>, AppError> {
    crate::domain::user::check_display_text(description, MAX_DESCRIPTION_LENGTH)
        .map_err(|e| AppError::validation("description", e))
}

/// The id of an endpoint of the configuration, derived from its URL: the same on every node and
/// at every start, so its row (and delivery log) is found again.
fn configured_id(url: &str) -> Uuid {
    let digest = Sha256::digest(format!(
        "authd webhook endpoint from the configuration\0{url}"
    ));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// An endpoint's secret sealed under `tokens.key_encryption_key`, its id bound in.
fn seal(key_encryption_key: &Secret, id: Uuid, secret: &SigningSecret) -> Result<Vec<u8>, String> {
    crate::keys::encrypt(
        secret.to_text().as_bytes(),
        key_encryption_key.expose().as_bytes(),
        &sealing_label(id),
    )
}

/// Stores the endpoints of `webhooks.endpoints` (and disables those that left it): at start,
/// before the dispatcher sends anything. The kinds are checked here, where they are known.
pub async fn sync_configured(
    store: &dyn Store,
    endpoints: &[WebhookEndpointSettings],
    key_encryption_key: &Secret,
) -> Result<(), String> {
    let mut stored = Vec::with_capacity(endpoints.len());
    for (index, endpoint) in endpoints.iter().enumerate() {
        let setting = |key: &str| format!("webhooks.endpoints[{index}].{key}");
        let events =
            checked_events(&endpoint.events).map_err(|e| format!("{}: {e}", setting("events")))?;
        let secret = SigningSecret::parse(endpoint.secret.expose())
            .map_err(|e| format!("{}: {e}", setting("secret")))?;
        let url = endpoint.url.trim().to_string();
        let id = configured_id(&url);
        let description = endpoint.description.trim();
        stored.push(NewWebhookEndpoint {
            id,
            sealed_secret: seal(key_encryption_key, id, &secret)?,
            url,
            description: (!description.is_empty()).then(|| description.to_string()),
            events,
            source: EndpointSource::Config,
        });
    }
    store
        .sync_configured_endpoints(&stored)
        .await
        .map_err(|e| format!("webhooks.endpoints: cannot store them: {e}"))
}

#[derive(Clone)]
pub struct WebhookService {
    store: Arc<dyn Store>,
    audit: Audit,
    /// `None` when webhooks are off: the endpoints answer 404 `feature_disabled`.
    dispatcher: Option<Addr<WebhookDispatcher>>,
    policy: TargetPolicy,
    key_encryption_key: Secret,
}

impl WebhookService {
    pub fn new(
        store: Arc<dyn Store>,
        audit: Audit,
        dispatcher: Option<Addr<WebhookDispatcher>>,
        settings: &WebhookSettings,
        key_encryption_key: Secret,
    ) -> Self {
        WebhookService {
            store,
            audit,
            dispatcher,
            policy: settings.target_policy(),
            key_encryption_key,
        }
    }

    fn require_enabled(&self) -> Result<&Addr<WebhookDispatcher>, AppError> {
        self.dispatcher.as_ref().ok_or(AppError::FeatureDisabled)
    }

    /// Every endpoint, oldest first.
    pub async fn list(&self) -> Result<Vec<WebhookEndpoint>, AppError> {
        self.require_enabled()?;
        Ok(self.store.webhook_endpoints().await?)
    }

    /// Registers an endpoint for `events` with a fresh secret, answered this once.
    pub async fn create(
        &self,
        admin: &User,
        client: &ClientContext,
        url: &str,
        events: &[String],
        description: Option<&str>,
    ) -> Result<CreatedEndpoint, AppError> {
        self.require_enabled()?;
        if url.trim().is_empty() {
            return Err(AppError::validation("url", "is required"));
        }
        if url.len() > MAX_URL_LENGTH {
            return Err(AppError::validation(
                "url",
                format!("must be at most {MAX_URL_LENGTH} bytes"),
            ));
        }
        let target = check_target(url, self.policy)
            .await
            .map_err(|e| AppError::validation("url", e))?;
        let events = checked_events(events).map_err(|e| AppError::validation("events", e))?;
        let description = checked_description(description)?;
        let id = Uuid::new_v4();
        let secret = SigningSecret::generate();
        let endpoint = self
            .store
            .create_webhook_endpoint(&NewWebhookEndpoint {
                id,
                url: target.to_string(),
                description,
                sealed_secret: seal(&self.key_encryption_key, id, &secret)
                    .map_err(AppError::Internal)?,
                events,
                source: EndpointSource::Api,
            })
            .await?;
        tracing::info!(admin_id = %admin.id, endpoint_id = %id, "admin registered a webhook endpoint");
        let url = shown_url(&endpoint.url);
        let details = json!({ "endpointId": id, "url": url, "events": endpoint.events });
        self.audit
            .record_admin_action(
                EventKind::AdminWebhookCreated,
                None,
                admin.id,
                client,
                details,
            )
            .await;
        Ok(CreatedEndpoint {
            endpoint,
            secret: secret.to_text(),
        })
    }

    /// Deletes an endpoint and its delivery log. One of the configuration is removed there
    /// instead (it would come back at the next start), unless it has left it already.
    pub async fn delete(
        &self,
        admin: &User,
        client: &ClientContext,
        id: Uuid,
    ) -> Result<(), AppError> {
        self.require_enabled()?;
        let endpoint = self
            .store
            .webhook_endpoint(id)
            .await?
            .ok_or(AppError::NotFound)?;
        if endpoint.source == EndpointSource::Config && endpoint.enabled {
            return Err(AppError::EndpointConfigured);
        }
        if !self.store.delete_webhook_endpoint(id).await? {
            return Err(AppError::NotFound);
        }
        tracing::info!(admin_id = %admin.id, endpoint_id = %id, "admin deleted a webhook endpoint");
        let details = json!({ "endpointId": id, "url": shown_url(&endpoint.url) });
        self.audit
            .record_admin_action(
                EventKind::AdminWebhookDeleted,
                None,
                admin.id,
                client,
                details,
            )
            .await;
        Ok(())
    }

    /// A page of an endpoint's deliveries, newest first, and the cursor of the next.
    pub async fn deliveries(
        &self,
        id: Uuid,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<WebhookDelivery>, Option<String>), AppError> {
        self.require_enabled()?;
        let limit = checked_limit(limit)?;
        let before = cursor
            .filter(|c| !c.is_empty())
            .map(decode_cursor)
            .transpose()?;
        if self.store.webhook_endpoint(id).await?.is_none() {
            return Err(AppError::NotFound);
        }
        let page = DeliveryPage {
            endpoint_id: id,
            before,
            limit: limit + 1,
        };
        let mut deliveries = self.store.webhook_deliveries(&page).await?;
        let next_cursor = if deliveries.len() > limit as usize {
            deliveries.truncate(limit as usize);
            deliveries.last().map(|d| encode_cursor(d.created_at, d.id))
        } else {
            None
        };
        Ok((deliveries, next_cursor))
    }

    /// Queues a dead delivery again (due now, a full series of attempts ahead of it).
    pub async fn retry(&self, id: Uuid, delivery_id: Uuid) -> Result<WebhookDelivery, AppError> {
        let dispatcher = self.require_enabled()?;
        if !self.store.requeue_webhook_delivery(id, delivery_id).await? {
            return match self.store.webhook_delivery(id, delivery_id).await? {
                Some(_) => Err(AppError::DeliveryNotDead),
                None => Err(AppError::NotFound),
            };
        }
        dispatcher.do_send(Wake);
        self.store
            .webhook_delivery(id, delivery_id)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// Deliveries waiting for enabled endpoints, for metrics; `None` when webhooks are off or
    /// the queue cannot be read.
    pub async fn queue_depth(&self) -> Option<i64> {
        self.dispatcher.as_ref()?;
        self.store
            .webhook_queue_depth()
            .await
            .map_err(|e| tracing::warn!(error = %e, "metrics: could not read the webhook queue"))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_known_kinds_without_repeats_or_everything() {
        let list = |events: &[&str]| events.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(
            checked_events(&list(&["signup", "login_failed", "signup"])).unwrap(),
            list(&["signup", "login_failed"])
        );
        assert_eq!(
            checked_events(&list(&["signup", "*"])).unwrap(),
            list(&["*"])
        );
        assert!(checked_events(&[]).is_err());
        let error = checked_events(&list(&["sign_up"])).unwrap_err();
        assert!(
            error.contains("\"sign_up\"") && error.contains("login_failed"),
            "{error}"
        );
    }

    #[test]
    fn configured_endpoints_keep_their_id() {
        let a = configured_id("https://hooks.example.com/a");
        assert_eq!(a, configured_id("https://hooks.example.com/a"));
        assert_ne!(a, configured_id("https://hooks.example.com/b"));
    }
}
