//! The goose scenarios. Every request is timed by `record` (microseconds, by status) as well as by
//! goose. Users get their sessions from a process-wide cache, so a login made for one phase serves
//! the next ones and start-up logins do not repeat.
//!
//! - `login_flood`: `POST /auth/login` in a loop with seeded accounts (one hash each).
//! - `authed_read_me`: `GET /me` with a bearer token, in a loop.
//! - `authed_read_live`: `GET /health/live` in a loop: the framework's own ceiling.
//! - `me_probe`: `GET /me` paced (a wait after each request), a light probe of latency.
//! - `refresh_storm`: `POST /auth/refresh` in a loop, each user rotating its own session.
//! - `mixed`: 70 % `GET /me`, 20 % refresh, 8 % login, 2 % signup; after a 503 a user waits as
//!   `Retry-After` says, as a real client would (the flood does not).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use goose::prelude::*;
use serde_json::{json, Value};

use crate::record;

/// What every user needs to know, fixed for the whole process.
pub struct Shared {
    /// Seeded accounts are `<prefix>-<i>@example.com`, i in 0..seeded.
    pub email_prefix: String,
    pub seeded: usize,
    pub password: String,
    /// Distinguishes this process's signups from any earlier run's.
    pub run_id: String,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

pub fn init(shared: Shared) {
    let _ = SHARED.set(shared);
}

fn shared() -> &'static Shared {
    SHARED.get().expect("scenarios::init was called")
}

fn seeded_email(index: usize) -> String {
    let s = shared();
    format!("{}-{}@example.com", s.email_prefix, index % s.seeded.max(1))
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

/// Sessions by seeded-account index, kept across phases. A refresh stores the rotated token back.
static SESSIONS: Mutex<Vec<Option<Tokens>>> = Mutex::new(Vec::new());

fn cached_session(index: usize) -> Option<Tokens> {
    let sessions = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
    sessions.get(index).cloned().flatten()
}

fn store_session(index: usize, tokens: Tokens) {
    let mut sessions = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
    if sessions.len() <= index {
        sessions.resize(index + 1, None);
    }
    sessions[index] = Some(tokens);
}

/// Per-scenario user numbering within a phase (reset before each phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    LoginFlood,
    Me,
    Live,
    MeProbe,
    RefreshStorm,
    Mixed,
}

const KINDS: usize = 6;
static NEXT_INDEX: [AtomicUsize; KINDS] = [const { AtomicUsize::new(0) }; KINDS];
static SIGNUPS: AtomicU64 = AtomicU64::new(0);

pub fn reset_indices() {
    for counter in &NEXT_INDEX {
        counter.store(0, Ordering::SeqCst);
    }
}

/// What a user carries between its transactions.
#[derive(Clone)]
struct UserState {
    /// Its seeded account (and cached session) index.
    index: usize,
    tokens: Option<Tokens>,
    /// xorshift64 state, for the mixed scenario's draws.
    rng: u64,
}

impl UserState {
    fn new(index: usize, tokens: Option<Tokens>) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        UserState {
            index,
            tokens,
            rng: (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos | 1,
        }
    }

    /// 0..100, uniformly enough.
    fn percent(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x % 100
    }
}

type Tx = Result<(), Box<TransactionError>>;

/// What came back: status (0 when no answer came), the body parsed as JSON when asked for, and
/// `Retry-After` in seconds.
struct Answer {
    status: u16,
    body: Option<Value>,
    retry_after: Option<u64>,
}

/// One timed request. The body is read in full (the latency includes reading it) and parsed when
/// `parse`.
async fn timed(
    user: &mut GooseUser,
    name: &'static str,
    method: GooseMethod,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
    parse: bool,
) -> Result<Answer, Box<TransactionError>> {
    let mut builder = user.get_request_builder(&method, path)?;
    if let Some(body) = &body {
        builder = builder.json(body);
    }
    if let Some(token) = bearer {
        builder = builder.bearer_auth(token);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(builder)
        .build();
    let started = Instant::now();
    let answer = user.request(request).await?;
    let mut retry_after = None;
    let (status, body) = match answer.response {
        Ok(response) => {
            let status = response.status().as_u16();
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok());
            match response.bytes().await {
                Ok(bytes) if parse => (status, serde_json::from_slice(&bytes).ok()),
                Ok(_) => (status, None),
                Err(_) => (0, None),
            }
        }
        Err(_) => (0, None),
    };
    record::record(name, status, started.elapsed());
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

/// A well-behaved client waits as `Retry-After` says (at most 2 s) after a 503.
async fn honour_retry_after(answer: &Answer) {
    if answer.status == 503 {
        let seconds = answer.retry_after.unwrap_or(1).min(2);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }
}

fn tokens_from(value: &Value) -> Option<Tokens> {
    Some(Tokens {
        access: value.get("accessToken")?.as_str()?.to_string(),
        refresh: value.get("refreshToken")?.as_str()?.to_string(),
    })
}

fn login_body(index: usize) -> Value {
    json!({
        "email": seeded_email(index),
        "password": shared().password,
        "tokenTransport": "body",
    })
}

/// Logs a seeded account in for a session, retrying while the hasher pool answers 503 (many
/// users start at once); at most ~30 s.
async fn login_for_session(user: &mut GooseUser, index: usize) -> Result<Tokens, String> {
    for _ in 0..150 {
        let Answer { status, body, .. } = timed(
            user,
            "start-up login",
            GooseMethod::Post,
            "/auth/login",
            Some(login_body(index)),
            None,
            true,
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        match (status, body.as_ref().and_then(tokens_from)) {
            (200, Some(tokens)) => {
                store_session(index, tokens.clone());
                return Ok(tokens);
            }
            (503, _) | (0, _) => tokio::time::sleep(Duration::from_millis(200)).await,
            (status, _) => {
                return Err(format!(
                    "login of {} answered {status}: are the accounts seeded with this password?",
                    seeded_email(index)
                ))
            }
        }
    }
    Err("the hasher pool stayed full for 30 s".into())
}

fn next_index(kind: Kind) -> usize {
    NEXT_INDEX[kind as usize].fetch_add(1, Ordering::SeqCst)
}

async fn start_without_session(user: &mut GooseUser, kind: Kind) -> Tx {
    let index = next_index(kind);
    user.set_session_data(UserState::new(index, None));
    record::user_ready();
    Ok(())
}

async fn start_with_session(user: &mut GooseUser, kind: Kind) -> Tx {
    let index = next_index(kind);
    let tokens = match cached_session(index) {
        Some(tokens) => tokens,
        None => match login_for_session(user, index).await {
            Ok(tokens) => tokens,
            Err(e) => {
                // Without a session this phase cannot measure anything: end it now.
                record::abort(format!("start-up login failed: {e}"));
                return Ok(());
            }
        },
    };
    user.set_session_data(UserState::new(index, Some(tokens)));
    record::user_ready();
    Ok(())
}

/// Sets a user of `kind` up: its index, and a session for the kinds that act signed in.
async fn start(user: &mut GooseUser, kind: Kind) -> Tx {
    match kind {
        Kind::LoginFlood | Kind::Live => start_without_session(user, kind).await,
        Kind::Me | Kind::MeProbe | Kind::RefreshStorm | Kind::Mixed => {
            start_with_session(user, kind).await
        }
    }
}

/// After the window closes, users idle until goose stops them instead of adding load.
async fn window_closed() -> bool {
    if record::ended() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        true
    } else {
        false
    }
}

fn state(user: &GooseUser) -> (usize, Option<Tokens>) {
    let s = user.get_session_data_unchecked::<UserState>();
    (s.index, s.tokens.clone())
}

async fn login_once(user: &mut GooseUser) -> Result<Answer, Box<TransactionError>> {
    let (index, _) = state(user);
    timed(
        user,
        "POST /auth/login",
        GooseMethod::Post,
        "/auth/login",
        Some(login_body(index)),
        None,
        false,
    )
    .await
}

/// The flood: the next attempt follows a 503 at once.
async fn login(user: &mut GooseUser) -> Tx {
    if window_closed().await {
        return Ok(());
    }
    login_once(user).await?;
    Ok(())
}

/// A login among other work: after a 503 the user waits as told.
async fn polite_login(user: &mut GooseUser) -> Tx {
    if window_closed().await {
        return Ok(());
    }
    let answer = login_once(user).await?;
    honour_retry_after(&answer).await;
    Ok(())
}

async fn me_named(user: &mut GooseUser, name: &'static str) -> Tx {
    if window_closed().await {
        return Ok(());
    }
    let (_, tokens) = state(user);
    let access = tokens.map(|t| t.access).unwrap_or_default();
    timed(
        user,
        name,
        GooseMethod::Get,
        "/me",
        None,
        Some(&access),
        false,
    )
    .await?;
    Ok(())
}

async fn me(user: &mut GooseUser) -> Tx {
    me_named(user, "GET /me").await
}

async fn me_probe(user: &mut GooseUser) -> Tx {
    me_named(user, "GET /me (probe)").await
}

async fn live(user: &mut GooseUser) -> Tx {
    if window_closed().await {
        return Ok(());
    }
    timed(
        user,
        "GET /health/live",
        GooseMethod::Get,
        "/health/live",
        None,
        None,
        false,
    )
    .await?;
    Ok(())
}

async fn refresh(user: &mut GooseUser) -> Tx {
    if window_closed().await {
        return Ok(());
    }
    let (index, tokens) = state(user);
    let presented = tokens.map(|t| t.refresh).unwrap_or_default();
    let Answer { status, body, .. } = timed(
        user,
        "POST /auth/refresh",
        GooseMethod::Post,
        "/auth/refresh",
        Some(json!({ "refreshToken": presented, "tokenTransport": "body" })),
        None,
        true,
    )
    .await?;
    let renewed = match (status, body.as_ref().and_then(tokens_from)) {
        (200, Some(tokens)) => Some(tokens),
        // The session is gone (it should not be): sign in again, outside the refresh figures.
        (401, _) => login_for_session(user, index).await.ok(),
        _ => None,
    };
    if let Some(tokens) = renewed {
        store_session(index, tokens.clone());
        user.get_session_data_unchecked_mut::<UserState>().tokens = Some(tokens);
    }
    Ok(())
}

async fn signup(user: &mut GooseUser) -> Tx {
    if window_closed().await {
        return Ok(());
    }
    let n = SIGNUPS.fetch_add(1, Ordering::Relaxed);
    let s = shared();
    let email = format!("{}-signup-{}-{n}@example.com", s.email_prefix, s.run_id);
    let answer = timed(
        user,
        "POST /auth/signup",
        GooseMethod::Post,
        "/auth/signup",
        Some(json!({ "email": email, "password": s.password, "tokenTransport": "body" })),
        None,
        false,
    )
    .await?;
    honour_retry_after(&answer).await;
    Ok(())
}

/// One request of the mix, drawn at random: 70 % `GET /me`, 20 % refresh, 8 % login, 2 % signup.
async fn mixed_step(user: &mut GooseUser) -> Tx {
    let draw = user.get_session_data_unchecked_mut::<UserState>().percent();
    match draw {
        0..70 => me(user).await,
        70..90 => refresh(user).await,
        90..98 => polite_login(user).await,
        _ => signup(user).await,
    }
}

/// The on-start transaction of a user of `kind`: `start` for that kind.
fn on_start(kind: Kind) -> Transaction {
    let function: TransactionFunction =
        std::sync::Arc::new(move |user| Box::pin(start(user, kind)));
    Transaction::new(function).set_name("start").set_on_start()
}

/// The goose scenario of one kind, with `weight` = its number of users in the phase.
pub fn scenario(kind: Kind, weight: usize, probe_wait: Duration) -> Result<Scenario, GooseError> {
    let (name, step, step_name): (&str, Transaction, &str) = match kind {
        Kind::LoginFlood => ("login_flood", transaction!(login), "login"),
        Kind::Me => ("authed_read_me", transaction!(me), "me"),
        Kind::Live => ("authed_read_live", transaction!(live), "live"),
        Kind::MeProbe => ("me_probe", transaction!(me_probe), "me probe"),
        Kind::RefreshStorm => ("refresh_storm", transaction!(refresh), "refresh"),
        Kind::Mixed => ("mixed", transaction!(mixed_step), "mixed"),
    };
    let mut s = scenario!(name)
        .register_transaction(on_start(kind))
        .register_transaction(step.set_name(step_name));
    if kind == Kind::MeProbe {
        s = s.set_wait_time(probe_wait, probe_wait)?;
    }
    s.set_weight(weight)
}
