//! The janitor actor: on an interval, deletes what has outlived its use (expired refresh tokens,
//! dead sessions, spent one-time tokens, delivered mail) in small batches, so it never holds a
//! long lock or a long transaction. Several nodes may run it at once: deletes are idempotent.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};

use crate::config::JanitorSettings;
use crate::store::{PurgeBatch, PurgeTarget, Store};

pub struct Janitor {
    store: Arc<dyn Store>,
    settings: JanitorSettings,
    sweeping: bool,
}

impl Janitor {
    pub fn new(store: Arc<dyn Store>, settings: JanitorSettings) -> Self {
        Janitor {
            store,
            settings,
            sweeping: false,
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let store = self.store.clone();
        let settings = self.settings.clone();
        let work = async move { sweep_once(store.as_ref(), &settings).await };
        ctx.spawn(work.into_actor(self).map(|_, act, _| act.sweeping = false));
    }
}

/// Deletes batch after batch of each target until a batch comes back short.
pub async fn sweep_once(store: &dyn Store, settings: &JanitorSettings) {
    for target in PurgeTarget::ALL {
        let batch = PurgeBatch {
            target,
            retention_seconds: match target {
                PurgeTarget::OldEvents => settings.events_retention_seconds,
                _ => settings.retention_seconds,
            },
            limit: settings.batch_size,
        };
        let mut total = 0;
        loop {
            match store.purge(batch).await {
                Ok(deleted) => {
                    total += deleted;
                    if deleted < u64::from(settings.batch_size) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(table = target.name(), error = %e, "janitor: purge failed; next sweep retries");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(table = target.name(), deleted = total, "janitor swept");
        }
    }
}

impl Actor for Janitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(
            Duration::from_secs(self.settings.interval_seconds.max(1)),
            |act, ctx| act.sweep(ctx),
        );
    }
}
