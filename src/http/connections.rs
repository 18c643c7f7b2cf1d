//! Slow clients: the deadline actix leaves out.
//!
//! actix answers 408 when the *first* request head on a connection is slow
//! (`server.client_request_timeout_ms`) and closes a kept-alive connection that stays silent
//! (`server.keep_alive_seconds`). But once a byte of a later request has arrived, that request's
//! head has no deadline at all (actix-http 3: "head timer only applies to first request on
//! connection"), so a client trickling one header byte at a time (slowloris) could hold a
//! connection, and a slot of `server.max_connections`, forever.
//!
//! So every connection gets a watchdog: when no request has reached the app within
//! `keep_alive + client_request_timeout` of the previous answer (or of the connection's start),
//! the socket is shut down. A request the app is handling is never cut: its body has its own
//! bound (`server.client_body_timeout_ms`, in the JSON extractor).

use std::any::Any;
use std::cell::Cell;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{sleep_until, Instant};

#[derive(Debug)]
struct State {
    /// Requests of this connection the app is handling now.
    in_flight: Cell<u32>,
    /// When the connection started or the app last answered on it.
    idle_since: Cell<Instant>,
}

/// The per-connection record the request middleware updates; lives in the connection's data as
/// long as the connection does. Dropping it releases the watchdog.
pub struct ConnectionWatch {
    state: Rc<State>,
    _closed: oneshot::Sender<()>,
}

/// Held while the app handles a request of the connection.
pub struct ActiveRequest(Rc<State>);

impl ConnectionWatch {
    pub fn request_started(&self) -> ActiveRequest {
        self.state.in_flight.set(self.state.in_flight.get() + 1);
        ActiveRequest(self.state.clone())
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
        self.0.idle_since.set(Instant::now());
    }
}

/// The `HttpServer::on_connect` callback: watches each plain TCP connection, so that a connection
/// idle for the app (no request being handled) longer than `idle_limit` is shut down.
pub fn watch(idle_limit: Duration) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |connection, data| {
        let Some(stream) = connection.downcast_ref::<TcpStream>() else {
            return;
        };
        // Our own handle on the socket (a duplicate descriptor): `shutdown` on it ends the
        // connection for actix too. It is dropped as soon as actix is done with the connection.
        let Ok(socket) = stream.as_fd().try_clone_to_owned() else {
            return;
        };
        let state = Rc::new(State {
            in_flight: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
        });
        let (closed_tx, closed_rx) = oneshot::channel();
        data.insert(ConnectionWatch {
            state: state.clone(),
            _closed: closed_tx,
        });
        actix_web::rt::spawn(watchdog(state, socket, closed_rx, idle_limit));
    }
}

async fn watchdog(
    state: Rc<State>,
    socket: OwnedFd,
    mut closed: oneshot::Receiver<()>,
    idle_limit: Duration,
) {
    loop {
        let busy = state.in_flight.get() > 0;
        let deadline = if busy {
            Instant::now() + idle_limit
        } else {
            state.idle_since.get() + idle_limit
        };
        if !busy && deadline <= Instant::now() {
            tracing::debug!("closing a connection that sent no complete request in time");
            let _ = std::net::TcpStream::from(socket).shutdown(Shutdown::Both);
            return;
        }
        tokio::select! {
            // The connection is gone (the sender was dropped with its data): release the socket.
            _ = &mut closed => return,
            _ = sleep_until(deadline) => {}
        }
    }
}
