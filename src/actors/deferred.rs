//! The deferred-work actor: work a request promised before doing it ("send me a reset link" is
//! answered 202 first, so a known address and an unknown one answer alike in time), run after
//! the answer has gone. It lives on the main arbiter, not on an HTTP worker, so a graceful
//! shutdown drains it (see `Application::run_until_stopped`) instead of dropping it with the
//! worker that accepted the request.

use std::future::Future;
use std::pin::Pin;

use actix::{Actor, AsyncContext, Context, Handler, Message, ResponseFuture};
use tokio::sync::watch;

/// A piece of work: it logs its own failure.
pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Message)]
#[rtype(result = "()")]
pub struct Run(pub Job);

/// Answers once every job started before it has finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

pub struct Deferred {
    /// Jobs running; `Drain` waits for it to reach zero.
    running: watch::Sender<usize>,
}

impl Deferred {
    pub fn new() -> Self {
        Deferred {
            running: watch::Sender::new(0),
        }
    }
}

impl Default for Deferred {
    fn default() -> Self {
        Self::new()
    }
}

impl Actor for Deferred {
    type Context = Context<Self>;
}

impl Handler<Run> for Deferred {
    type Result = ();

    fn handle(&mut self, Run(job): Run, ctx: &mut Self::Context) {
        self.running.send_modify(|n| *n += 1);
        let running = self.running.clone();
        ctx.spawn(actix::fut::wrap_future(async move {
            job.await;
            running.send_modify(|n| *n -= 1);
        }));
    }
}

impl Handler<Drain> for Deferred {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let mut running = self.running.subscribe();
        Box::pin(async move {
            let _ = running.wait_for(|n| *n == 0).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[actix_web::test]
    async fn drain_waits_for_every_job_started_before_it() {
        let deferred = Deferred::new().start();
        let done = Arc::new(AtomicUsize::new(0));
        for delay in [30, 10, 50] {
            let done = done.clone();
            deferred.do_send(Run(Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                done.fetch_add(1, Ordering::SeqCst);
            })));
        }
        deferred.send(Drain).await.unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 3);
        // Nothing running: drains at once.
        deferred.send(Drain).await.unwrap();
    }
}
