//! Processes dying and the database going away under load: nothing half-written, nothing lost, and
//! every accepted request answered. Each test runs its own authd processes (and, for the
//! PostgreSQL restart, its own PostgreSQL), bounded in time, on loopback.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::PASSWORD;
use crate::processes::{
    assert_no_half_written_state, tokens, ClusterEnv, Node, NodeClient, OwnPostgres, Tokens,
};

fn email() -> String {
    format!("crash-{}@example.com", Uuid::new_v4().simple())
}

/// One client's loop: refresh, and now and then log in again, until `stop`; it keeps the last
/// tokens it was given.
async fn rotate_until(
    client: &NodeClient,
    node: &Node,
    email: &str,
    mut held: Tokens,
    stop: &AtomicBool,
) -> Tokens {
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let answer = if round % 5 == 0 {
            client
                .post(
                    node.url("/auth/login"),
                    json!({ "email": email, "password": PASSWORD, "tokenTransport": "body" }),
                )
                .await
        } else {
            client.refresh(node, &held.refresh).await
        };
        match answer {
            Ok((200, body)) => held = tokens(&body),
            Ok((status, body)) => panic!("{status} {body}"),
            // The node died mid-request: the answer is lost; the client keeps what it had.
            Err(_) => break,
        }
    }
    held
}

#[actix_web::test]
async fn a_node_killed_during_logins_and_rotations_leaves_no_half_rotated_session() {
    // Room in the hasher's queue for every client's login at once: no 503 while it lives.
    let cluster = ClusterEnv::new(&[("AUTHD__HASHER__QUEUE_CAPACITY", "16")]);
    let node = cluster.start_node("victim");
    let client = NodeClient::new();
    let mut accounts = Vec::new();
    for _ in 0..8 {
        let email = email();
        let held = client.signup(&node, &email).await;
        accounts.push((email, held));
    }

    let stop = AtomicBool::new(false);
    let loops = join_all(
        accounts
            .iter()
            .map(|(email, held)| rotate_until(&client, &node, email, held.clone(), &stop)),
    );
    let killer = async {
        actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
        node.signal("KILL");
    };
    let (held, ()) = futures_util::join!(loops, killer);
    stop.store(true, Ordering::Relaxed);

    assert_no_half_written_state(&cluster.database.url()).await;

    // Another node takes over: every client goes on with what it holds. A rotation whose answer
    // was lost left the client one token behind; the grace window gives it the same child.
    let survivor = cluster.start_node("survivor");
    for (held, (email, _)) in held.iter().zip(&accounts) {
        let (status, body) = client.refresh(&survivor, &held.refresh).await.unwrap();
        assert_eq!(status, 200, "{email}: {body}");
    }
    assert_no_half_written_state(&cluster.database.url()).await;
}

#[actix_web::test]
async fn sigterm_answers_every_accepted_request_and_flushes_the_outbox() {
    // Real hashing cost, so that logins are still running when the signal arrives.
    let cluster = ClusterEnv::new(&[
        ("AUTHD__HASHER__ARGON2_MEMORY_KIB", "16384"),
        ("AUTHD__HASHER__ARGON2_ITERATIONS", "2"),
        ("AUTHD__HASHER__QUEUE_CAPACITY", "64"),
        ("AUTHD__SERVER__SHUTDOWN_TIMEOUT_SECONDS", "20"),
        // Sixteen logins of one account at once would otherwise be throttled past the fifth:
        // attempts are reserved before they are verified.
        ("AUTHD__AUTH__LOCKOUT__ENABLED", "false"),
    ]);
    let mut node = cluster.start_node("graceful");
    let client = NodeClient::new();
    let email = email();
    client.signup(&node, &email).await;

    // A mail queued just before the signal, and 16 logins in flight when it arrives.
    let (status, _) = client
        .post(node.url("/auth/password/forgot"), json!({ "email": email }))
        .await
        .unwrap();
    assert_eq!(status, 202);
    let sent = Arc::new(AtomicUsize::new(0));
    let logins = join_all((0..16).map(|_| {
        let sent = sent.clone();
        let client = &client;
        let node = &node;
        let email = &email;
        async move {
            sent.fetch_add(1, Ordering::SeqCst);
            client
                .post(
                    node.url("/auth/login"),
                    json!({ "email": email, "password": PASSWORD }),
                )
                .await
        }
    }));
    let terminate = async {
        while sent.load(Ordering::SeqCst) < 16 {
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        node.signal("TERM");
    };
    let (answers, ()) = futures_util::join!(logins, terminate);
    let mut answered = 0;
    for answer in answers {
        let (status, body) = answer.expect("every request accepted before SIGTERM is answered");
        assert!(
            status == 200 || status == 503,
            "an answer, not a failure: {status} {body}"
        );
        answered += 1;
    }
    assert_eq!(answered, 16);

    let status = node
        .wait_exit(Duration::from_secs(30))
        .expect("authd exits within its shutdown timeout");
    assert!(status.success(), "clean exit: {status}\n{}", node.log());
    // New connections are refused once it is gone.
    assert!(client
        .http
        .get(node.url("/health/live"))
        .send()
        .await
        .is_err());

    // The reset mail left the outbox: sent (a file here), nothing pending or leased.
    let mails = std::fs::read_dir(cluster.mail_dir())
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert!(mails >= 1, "the queued mail was sent before exit");
    let database = crate::helpers::postgres_client(&cluster.database.url()).await;
    let pending: i64 = database
        .query_one(
            "SELECT count(*) FROM email_outbox WHERE status <> 'sent'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0);
}

/// "Send me a reset link" while PostgreSQL is down is answered 503 (ask again), never a 202 whose
/// mail nobody writes; once the database is back, the same request mails the link.
/// A cluster on `postgres` whose nodes give up on the database within a second (a wait for a
/// connection, a connection attempt), so that an outage answers 503 at once.
fn failing_fast_on(postgres: &OwnPostgres) -> ClusterEnv {
    ClusterEnv::on_database(
        postgres.database(),
        &[
            ("AUTHD__DATABASE__ACQUIRE_TIMEOUT_SECONDS", "1"),
            ("AUTHD__DATABASE__CONNECT_TIMEOUT_SECONDS", "1"),
        ],
    )
}

#[actix_web::test]
async fn a_reset_asked_for_while_postgresql_is_down_is_refused_then_mailed_once_it_is_back() {
    let postgres = OwnPostgres::start();
    let cluster = failing_fast_on(&postgres);
    let node = cluster.start_node("mailing");
    let client = NodeClient::new();
    let email = email();
    client.signup(&node, &email).await;
    let forgot = || client.post(node.url("/auth/password/forgot"), json!({ "email": email }));

    postgres.stop();
    let (status, body) = forgot().await.expect("an answer");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "unavailable", "{body}");

    postgres.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = forgot().await.expect("an answer");
        if status == 202 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "no recovery in 30 s");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let mailed_reset = || {
        std::fs::read_dir(cluster.mail_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .any(|mail| mail.contains("Subject: authd: Reset your password"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mailed_reset() {
        assert!(Instant::now() < deadline, "no reset mail\n{}", node.log());
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn postgresql_restarted_under_load_fails_fast_recovers_and_leaves_no_half_written_rows() {
    let postgres = OwnPostgres::start();
    let cluster = failing_fast_on(&postgres);
    let node = cluster.start_node("steady");
    let client = NodeClient::new();
    let stop = AtomicBool::new(false);
    let outage = AtomicBool::new(false);
    let signed_up = std::sync::Mutex::new(Vec::new());
    let slowest_in_outage = std::sync::Mutex::new(Duration::ZERO);
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());

    let worker = |_: usize| async {
        while !stop.load(Ordering::Relaxed) {
            let email = email();
            let started = Instant::now();
            let answer = client
                .post(
                    node.url("/auth/signup"),
                    json!({ "email": email, "password": PASSWORD, "tokenTransport": "body" }),
                )
                .await
                .expect("an answer, never a hang or a dropped connection");
            let (status, body) = answer;
            *statuses.lock().unwrap().entry(status).or_default() += 1;
            if outage.load(Ordering::Relaxed) {
                let mut slowest = slowest_in_outage.lock().unwrap();
                *slowest = (*slowest).max(started.elapsed());
            }
            match status {
                201 => {
                    let held = tokens(&body);
                    // A rotation too, so rotations are under way when the database goes.
                    let (status, body) = client.refresh(&node, &held.refresh).await.unwrap();
                    assert!(status == 200 || status == 503, "{status} {body}");
                    signed_up.lock().unwrap().push(email);
                }
                503 => {
                    assert_eq!(body["code"], "unavailable", "{body}");
                    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("{other} {body}\n{}", node.log()),
            }
        }
    };
    let load = join_all((0..4).map(worker));
    let fault = async {
        actix_web::rt::time::sleep(Duration::from_millis(800)).await;
        outage.store(true, Ordering::Relaxed);
        postgres.stop();
        actix_web::rt::time::sleep(Duration::from_secs(3)).await;
        postgres.restart();
        outage.store(false, Ordering::Relaxed);
        // Recovery: the pool heals by itself; wait for signups to succeed again.
        let before = signed_up.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while signed_up.lock().unwrap().len() < before + 5 {
            assert!(Instant::now() < deadline, "no recovery in 30 s");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, Ordering::Relaxed);
    };
    futures_util::join!(load, fault);

    let statuses = statuses.into_inner().unwrap();
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");
    // Fast failure: acquire timeout (1 s) plus a connect attempt, far from a hang.
    let slowest = slowest_in_outage.into_inner().unwrap();
    assert!(
        slowest < Duration::from_secs(8),
        "slowest answer in the outage: {slowest:?}"
    );

    assert_no_half_written_state(&cluster.database.url()).await;
    let database = crate::helpers::postgres_client(&cluster.database.url()).await;
    for email in signed_up.into_inner().unwrap() {
        let sessions: i64 = database
            .query_one(
                "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1",
                &[&email],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            sessions, 1,
            "{email}: a 201 signup is whole (user and session)"
        );
    }
    drop(node);
}
