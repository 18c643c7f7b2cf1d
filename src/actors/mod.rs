//! The actors that own the hard parts. HTTP handlers only send them messages.
//!
//! - [`hasher`]: a bounded pool of sync threads for argon2id/bcrypt, with fast 503 on overload.
//! - [`tokens`]: sessions, access JWTs, refresh rotation and reuse detection, and the check of
//!   access tokens against their session.
//! - [`rate_limiter`]: per-IP limits and per-account attempts, shared across nodes through the
//!   cache.
//! - [`deferred`]: work promised in an answer and done after it, drained on shutdown.
//! - [`mailer`] and [`webhooks`]: drain the durable mail outbox and webhook queue, with retries.

pub mod deferred;
pub mod hasher;
pub mod janitor;
pub mod mailer;
pub mod rate_limiter;
pub mod tokens;
pub mod webhooks;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, MailboxError, Message};

/// To the actors that drain a durable queue ([`mailer::Mailer`], [`webhooks::WebhookDispatcher`]):
/// look for due items now (sent after some were queued, so they need not wait for the next tick).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// To the same actors at shutdown, once HTTP has stopped: let the work under way finish (its
/// outcomes recorded). What is still due stays `pending` for the next node; an item cut short
/// keeps its lease until it runs out and is then sent again. Each actor says what it finishes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// An actor's address that counts the messages sent to it and not answered yet
/// (`authd_actor_mailbox_backlog`): actix mailboxes are unbounded and report no length.
pub struct Tracked<A: Actor> {
    addr: Addr<A>,
    name: &'static str,
}

impl<A: Actor> Clone for Tracked<A> {
    fn clone(&self) -> Self {
        Tracked {
            addr: self.addr.clone(),
            name: self.name,
        }
    }
}

impl<A: Actor> Tracked<A> {
    pub fn new(addr: Addr<A>, name: &'static str) -> Self {
        Tracked { addr, name }
    }

    pub async fn send<M>(&self, message: M) -> Result<M::Result, MailboxError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        let _backlog = crate::metrics::mailbox(self.name);
        self.addr.send(message).await
    }
}
