//! Access tokens: signing one as the token actor does (claims, header with `kid`, the current
//! key), and verifying one (signature, algorithm, `kid`, `iss`, `aud`, time, and the session-row
//! check in the store, here in-memory SQLite) in place and through the actor's mailbox, for HS256 (the default), ES256 and EdDSA.
//! Also the CPU part of a refresh rotation: deriving the child token and hashing both.
//!
//! `cargo bench --bench tokens`

mod common;

use std::hint::black_box;
use std::time::Duration;

use authd::actors::tokens::VerifyAccess;
use authd::domain::assurance::AuthMethods;
use authd::domain::claims::{AccessClaims, SessionAssurance};
use authd::domain::jwt_algorithm::JwtAlgorithm;
use authd::domain::opaque_token::RefreshToken;
use authd::domain::user::Role;
use criterion::Criterion;
use uuid::Uuid;

fn tokens(c: &mut Criterion) {
    let rt = common::runtime();
    let mut group = c.benchmark_group("access_token");
    for algorithm in [
        JwtAlgorithm::HS256,
        JwtAlgorithm::ES256,
        JwtAlgorithm::EdDSA,
    ] {
        let settings = common::settings(algorithm);
        let store = rt.block_on(common::sqlite_memory());
        let tokens = rt.block_on(common::tokens(store.clone(), &settings));
        let name = algorithm.name();

        // What the token actor does to issue: claims, header with `kid`, sign with the ring's
        // current key.
        let ring = tokens.ring.clone();
        let settings_tokens = &settings.tokens;
        let assurance = SessionAssurance {
            methods: AuthMethods::password(),
            authenticated_at: chrono::Utc::now().timestamp(),
        };
        let claims = || {
            AccessClaims::new(
                Uuid::new_v4(),
                Uuid::new_v4(),
                Role::User,
                &assurance,
                (&settings_tokens.issuer, &settings_tokens.audience),
                chrono::Utc::now().timestamp(),
                settings_tokens.access_ttl_seconds as i64,
            )
        };
        group.bench_function(format!("issue/{name}"), |b| {
            b.iter(|| black_box(ring.sign(&claims()).expect("signs")))
        });

        // A real token from a session. `decode`: signature and claims alone. `verify_direct`:
        // that and the session check in the store, called in place. `verify`: the same through
        // the token actor's mailbox, as every authenticated request does it; the difference
        // with `verify_direct` is what the mailbox hop costs.
        let user_id = rt.block_on(common::seed_user(store.as_ref()));
        let token = rt
            .block_on(common::start_session(&tokens, user_id))
            .access_token;
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| black_box(ring.decode(black_box(&token)).expect("valid")))
        });
        group.bench_function(format!("verify_direct/{name}"), |b| {
            b.iter(|| {
                let claims = ring.decode(black_box(&token)).expect("valid");
                black_box(rt.block_on(tokens.service.caller(claims)).expect("live"))
            })
        });
        group.bench_function(format!("verify/{name}"), |b| {
            b.iter(|| {
                let caller = rt
                    .block_on(tokens.actor.send(VerifyAccess {
                        token: black_box(token.clone()),
                    }))
                    .expect("the actor answers")
                    .expect("valid");
                black_box(caller)
            })
        });
    }
    group.finish();

    let settings = common::settings(JwtAlgorithm::HS256);
    let secret = settings.tokens.refresh_secret.expose().as_bytes().to_vec();
    let parent = RefreshToken::generate();
    c.bench_function("refresh_token/derive_child_and_hash", |b| {
        b.iter(|| {
            let child = black_box(&parent).child(&secret);
            black_box((parent.hash(), child.hash()))
        })
    });
}

fn main() {
    common::run(Duration::from_secs(2), tokens);
}
