//! The webhook dispatcher: drains `webhook_deliveries`. A delivery is queued in the same
//! transaction as the audit event it announces, so a crash or an endpoint that is down never
//! loses it, and a request only ever inserts rows: it never waits for an endpoint. The
//! dispatcher claims due deliveries for a lease (so several nodes never send one at once), sends
//! each as a signed POST (Standard Webhooks) with at most `webhooks.max_concurrency` in flight,
//! and records the outcome: sent on a 2xx, otherwise retried after an exponential backoff with
//! jitter, dead after `webhooks.max_attempts`. Delivery is at least once, under a stable id.
//!
//! One dispatcher per process (on the main arbiter, like the mailer). Each connection goes only
//! to addresses `webhooks.allow_private_targets` allows, checked after DNS by the client's own
//! resolver (so a name cannot be re-pointed at the internal network between a check and the
//! connection); the client follows no redirect and ignores proxy variables. With
//! `webhooks.proxy_url` the proxy resolves and connects: authd then checks every address of the
//! target's name before each request, and the proxy's own egress rules must cover the rest (a
//! name re-pointed after the check, a proxy whose DNS sees internal zones).

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};

use super::{Flush, Wake};
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;
use uuid::Uuid;

use crate::config::{Secret, WebhookSettings};
use crate::domain::webhooks::{SigningSecret, TargetPolicy};
use crate::store::{ClaimedWebhook, DeliveryOutcome, Store, WebhookAttempt};

/// The associated data an endpoint's secret is sealed with: a sealed secret copied onto another
/// endpoint's row does not open.
pub fn sealing_label(endpoint_id: Uuid) -> String {
    format!("webhook:{endpoint_id}")
}

/// Opens an endpoint's sealed `whsec_...` secret.
pub fn open_secret(
    sealed: &[u8],
    endpoint_id: Uuid,
    key_encryption_key: &Secret,
) -> Result<SigningSecret, String> {
    let plain = crate::keys::decrypt(
        sealed,
        key_encryption_key.expose().as_bytes(),
        &sealing_label(endpoint_id),
    )
    .map_err(|_| {
        "the endpoint's secret does not open (wrong tokens.key_encryption_key?)".to_string()
    })?;
    let text = String::from_utf8(plain).map_err(|_| "the endpoint's secret is corrupt")?;
    SigningSecret::parse(&text).map_err(|e| format!("the endpoint's secret {e}"))
}

/// The addresses of `host` that `policy` allows; an error when there is none.
pub async fn allowed_addresses(
    host: &str,
    policy: TargetPolicy,
) -> Result<Vec<SocketAddr>, String> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("{host} cannot be resolved: {e}"))?
        .collect();
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|address| policy.allows(address.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(format!(
            "{host} resolves to no public address (webhooks.allow_private_targets is off)"
        ));
    }
    Ok(allowed)
}

/// Whether `raw` may be a webhook target now: the URL rules of [`TargetPolicy::check_url`] and,
/// when private targets are refused, a host name whose every address is public
/// ([`TargetPolicy::check_addresses`]). Deliveries check again at every connection.
pub async fn check_target(raw: &str, policy: TargetPolicy) -> Result<Url, String> {
    let url = policy.check_url(raw)?;
    if !policy.allow_private {
        if let Some(url::Host::Domain(host)) = url.host() {
            let resolved: Vec<_> = tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| format!("{host} cannot be resolved: {e}"))?
                .map(|address| address.ip())
                .collect();
            policy.check_addresses(host, &resolved)?;
        }
    }
    Ok(url)
}

/// The HTTP client's resolver when private targets are refused: it answers only the allowed
/// addresses, so the connection goes to an address that was checked.
struct PublicOnly(TargetPolicy);

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses = allowed_addresses(&host, policy).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What sends one delivery: the client, the key that opens secrets, the policy and the retry
/// rules.
struct Sender {
    client: reqwest::Client,
    key_encryption_key: Secret,
    policy: TargetPolicy,
    settings: WebhookSettings,
}

/// Why an attempt failed, and the endpoint's status if it answered.
struct Failure {
    status: Option<u16>,
    error: String,
}

impl Failure {
    fn without_answer(error: impl Into<String>) -> Self {
        Failure {
            status: None,
            error: error.into(),
        }
    }
}

impl Sender {
    /// Sends the delivery once: the 2xx status, or why not.
    async fn send(&self, delivery: &ClaimedWebhook) -> Result<u16, Failure> {
        let secret = open_secret(
            &delivery.sealed_secret,
            delivery.endpoint_id,
            &self.key_encryption_key,
        )
        .map_err(Failure::without_answer)?;
        let url = if self.settings.proxy_url.is_empty() {
            // The client's resolver checks the address at the connection.
            self.policy.check_url(&delivery.url)
        } else {
            // The proxy resolves the name again: every address must pass, and in time.
            let timeout = self.settings.request_timeout();
            tokio::time::timeout(timeout, check_target(&delivery.url, self.policy))
                .await
                .unwrap_or_else(|_| Err("could not be resolved in time".into()))
        }
        .map_err(|e| Failure::without_answer(format!("the URL {e}")))?;
        let id = delivery.event_id.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = secret.sign(&id, timestamp, delivery.payload.as_bytes());
        let started = Instant::now();
        let answer = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        crate::metrics::webhook_request(started.elapsed());
        let response = answer.map_err(|e| Failure::without_answer(self.describe(e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(Failure {
                status: Some(status.as_u16()),
                error: format!("the endpoint answered {status}"),
            })
        }
    }

    /// A transport error in one line: the timeout, or the chain of causes (a refused
    /// connection, a refused address), without the URL.
    fn describe(&self, error: reqwest::Error) -> String {
        if error.is_timeout() {
            return format!(
                "no answer within {} ms (webhooks.request_timeout_ms)",
                self.settings.request_timeout_ms
            );
        }
        let error = error.without_url();
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(inner) = cause {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            cause = inner.source();
        }
        text
    }

    /// One attempt and what it means: sent, retry after a backoff with jitter, or dead.
    async fn attempt(&self, delivery: &ClaimedWebhook) -> WebhookAttempt {
        match self.send(delivery).await {
            Ok(status) => WebhookAttempt {
                outcome: DeliveryOutcome::Sent,
                status: Some(status),
            },
            Err(Failure { status, error }) => {
                let retry = self.settings.retry_policy();
                let after = retry.retry_after(delivery.attempts, rand::thread_rng().gen());
                WebhookAttempt {
                    outcome: DeliveryOutcome::failed(error, after),
                    status,
                }
            }
        }
    }
}

/// Sends one claimed delivery and records the outcome.
async fn deliver(store: &dyn Store, sender: &Sender, delivery: ClaimedWebhook) {
    let attempt = sender.attempt(&delivery).await;
    match &attempt.outcome {
        DeliveryOutcome::Sent => {
            crate::metrics::webhook_delivery("sent");
            tracing::info!(delivery_id = %delivery.id, endpoint_id = %delivery.endpoint_id, "webhook delivered")
        }
        DeliveryOutcome::Retry {
            after_seconds,
            error,
        } => {
            crate::metrics::webhook_delivery("retry");
            tracing::warn!(delivery_id = %delivery.id, endpoint_id = %delivery.endpoint_id, attempt = delivery.attempts, after_seconds, %error, "webhook failed; will retry")
        }
        DeliveryOutcome::Dead { error } => {
            crate::metrics::webhook_delivery("dead");
            tracing::error!(delivery_id = %delivery.id, endpoint_id = %delivery.endpoint_id, attempts = delivery.attempts, %error, "webhook dead-lettered")
        }
    }
    if let Err(e) = store.record_webhook_attempt(delivery.id, &attempt).await {
        // The lease runs out and the delivery is sent again: at least once, never lost.
        tracing::warn!(error = %e, delivery_id = %delivery.id, "webhooks: cannot record an attempt");
    }
}

pub struct WebhookDispatcher {
    store: Arc<dyn Store>,
    sender: Arc<Sender>,
    /// One permit per request in flight (`webhooks.max_concurrency`).
    permits: Arc<Semaphore>,
    claiming: bool,
    /// A wake-up arrived during a claim: look again right after.
    again: bool,
    /// Shutting down: nothing more is claimed.
    stopping: bool,
}

impl WebhookDispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        settings: WebhookSettings,
        key_encryption_key: Secret,
    ) -> Result<Self, String> {
        let policy = settings.target_policy();
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.request_timeout())
            .user_agent(concat!("authd-webhooks/", env!("CARGO_PKG_VERSION")));
        let proxy = settings.proxy_url.as_str().trim();
        if !proxy.is_empty() {
            // The proxy resolves the targets; authd checks them itself before each request.
            let proxy =
                reqwest::Proxy::all(proxy).map_err(|e| format!("webhooks.proxy_url: {e}"))?;
            client = client.proxy(proxy);
        } else {
            // Never a proxy from the environment (HTTP_PROXY): it would resolve the targets.
            client = client.no_proxy();
            if !policy.allow_private {
                client = client.dns_resolver(Arc::new(PublicOnly(policy)));
            }
        }
        let client = client
            .build()
            .map_err(|e| format!("webhooks: the HTTP client: {e}"))?;
        Ok(WebhookDispatcher {
            store,
            permits: Arc::new(Semaphore::new(settings.max_concurrency as usize)),
            sender: Arc::new(Sender {
                client,
                key_encryption_key,
                policy,
                settings,
            }),
            claiming: false,
            again: false,
            stopping: false,
        })
    }

    /// How long a claimed delivery is reserved: it is sent at once (a permit is held for it
    /// before the claim), so its request's timeout and a margin to record the outcome.
    fn lease_seconds(&self) -> u64 {
        self.sender.settings.request_timeout().as_secs() + 30
    }

    /// Claims as many due deliveries as there are free permits (up to `batch_size`) and sends
    /// each as soon as it is claimed; each one that ends looks for more.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        if self.claiming {
            self.again = true;
            return;
        }
        let limit = self.sender.settings.batch_size as usize;
        let permits: Vec<OwnedSemaphorePermit> = (0..limit)
            .map_while(|_| self.permits.clone().try_acquire_owned().ok())
            .collect();
        if permits.is_empty() {
            // Every permit is in flight; the next delivery to end looks again.
            return;
        }
        self.claiming = true;
        let store = self.store.clone();
        let lease = self.lease_seconds();
        let wanted = permits.len();
        let claim = async move { store.claim_due_webhooks(wanted as u32, lease).await };
        ctx.spawn(claim.into_actor(self).map(move |claimed, act, ctx| {
            act.claiming = false;
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: cannot read the queue; retrying on the next tick");
                    return;
                }
            };
            let full = claimed.len() == wanted;
            for (delivery, permit) in claimed.into_iter().zip(permits) {
                let store = act.store.clone();
                let sender = act.sender.clone();
                let send = async move {
                    deliver(store.as_ref(), &sender, delivery).await;
                    drop(permit);
                };
                ctx.spawn(send.into_actor(act).map(|_, act, ctx| act.drain(ctx)));
            }
            if full || std::mem::take(&mut act.again) {
                ctx.notify(Wake);
            }
        }));
    }
}

impl Actor for WebhookDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(
            Duration::from_millis(self.sender.settings.poll_interval_ms),
            |act, ctx| act.drain(ctx),
        );
        ctx.notify(Wake);
    }
}

impl Handler<Wake> for WebhookDispatcher {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.drain(ctx);
    }
}

/// Claims nothing more and waits for the deliveries in flight.
impl Handler<Flush> for WebhookDispatcher {
    type Result = actix::ResponseFuture<()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        let permits = self.permits.clone();
        let all = self.sender.settings.max_concurrency;
        Box::pin(async move {
            // Every permit back: nothing is in flight any more.
            let _ = permits.acquire_many_owned(all).await;
        })
    }
}
