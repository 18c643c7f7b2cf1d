//! One refresh rotation: the store's part alone (`Store::rotate_refresh_token`: lock the session,
//! check the generation, retire the parent, insert the child) and the whole of a `Rotate` sent to
//! the token actor (the mailbox, parse, derive the child, the store's part, sign an access token).
//! Each iteration rotates the token the previous one produced, so the chain grows as in a real
//! session. On in-memory SQLite always; on PostgreSQL too when `DATABASE_URL` points at a server
//! (a fresh database is created there and dropped afterwards).
//!
//! `cargo bench --bench rotation`
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench rotation`

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use authd::actors::tokens::{Rotate, Rotated};
use authd::config::Settings;
use authd::domain::jwt_algorithm::JwtAlgorithm;
use authd::store::{Rotation, RotationOutcome, Store};
use criterion::Criterion;

fn bench_backend(
    c: &mut Criterion,
    rt: &actix::SystemRunner,
    backend: &str,
    store: Arc<dyn Store>,
    settings: &Settings,
) {
    let tokens_actor = rt.block_on(common::tokens(store.clone(), settings));
    let user_id = rt.block_on(common::seed_user(store.as_ref()));
    let tokens = settings.tokens.clone();
    let secret = tokens.refresh_secret.expose().as_bytes().to_vec();
    let mut group = c.benchmark_group(format!("rotation/{backend}"));

    let mut current = rt
        .block_on(common::start_session(&tokens_actor, user_id))
        .refresh_token;
    group.bench_function("store", |b| {
        b.iter(|| {
            let child = current.child(&secret);
            let outcome = rt
                .block_on(store.rotate_refresh_token(Rotation {
                    presented: current.hash(),
                    child: child.hash(),
                    refresh_ttl_seconds: tokens.refresh_ttl_seconds,
                    grace_seconds: tokens.refresh_reuse_grace_seconds,
                    session_max_lifetime_seconds: tokens.session_max_lifetime_seconds,
                }))
                .expect("store answers");
            assert!(
                matches!(outcome, RotationOutcome::Rotated(_)),
                "{outcome:?}"
            );
            current = child;
        })
    });

    let mut current = rt
        .block_on(common::start_session(&tokens_actor, user_id))
        .refresh_token;
    group.bench_function("token_actor", |b| {
        b.iter(|| {
            let rotated = rt
                .block_on(tokens_actor.actor.send(Rotate {
                    presented: current.as_str().to_string(),
                }))
                .expect("the actor answers")
                .expect("rotates");
            let Rotated::Issued(issued) = black_box(rotated) else {
                panic!("the current token was taken for reuse")
            };
            current = issued.refresh_token;
        })
    });
    group.finish();
}

fn rotation(c: &mut Criterion) {
    let rt = common::runtime();
    let settings = common::settings(JwtAlgorithm::HS256);
    let store = rt.block_on(common::sqlite_memory());
    bench_backend(c, &rt, "sqlite_memory", store, &settings);

    let mut pg_settings = common::settings(JwtAlgorithm::HS256);
    if let Some((store, admin_url)) = rt.block_on(common::postgres(&mut pg_settings)) {
        bench_backend(c, &rt, "postgres", store.clone(), &pg_settings);
        drop(store);
        let url = pg_settings.database.url.as_str().to_string();
        rt.block_on(common::drop_postgres(&admin_url, &url));
    }
}

fn main() {
    common::run(Duration::from_secs(3), rotation);
}
