//! Access tokens: signing one as the token service does (claims, header with `kid`, the current
//! key), and verifying one through `TokenService::verify_access` (signature, algorithm, `kid`,
//! `iss`, `aud`, time, and the session-row check in the store, here in-memory SQLite), for HS256 (the default), ES256 and EdDSA.
//! Also the CPU part of a refresh rotation: deriving the child token and hashing both.
//!
//! `cargo bench --bench tokens`

mod common;

use std::hint::black_box;
use std::time::Duration;

use authd::domain::claims::AccessClaims;
use authd::domain::jwt_algorithm::JwtAlgorithm;
use authd::domain::opaque_token::RefreshToken;
use authd::domain::user::Role;
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::Header;
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
        let service = rt.block_on(common::token_service(store.clone(), &settings));
        let name = algorithm.name();

        // What `TokenService::issue_access` does (it is private): claims, header, sign.
        let ring = service.keys().ring();
        let key = ring.current().clone();
        let encoding = key.encoding.clone().expect("the current key signs");
        let tokens = &settings.tokens;
        let sign = || {
            let claims = AccessClaims::new(
                Uuid::new_v4(),
                Uuid::new_v4(),
                Role::User,
                &tokens.issuer,
                &tokens.audience,
                chrono::Utc::now().timestamp(),
                tokens.access_ttl_seconds as i64,
            );
            let mut header = Header::new(key.algorithm);
            header.kid = Some(key.kid.clone());
            jsonwebtoken::encode(&header, &claims, &encoding).expect("signs")
        };
        group.bench_function(format!("issue/{name}"), |b| b.iter(|| black_box(sign())));

        // A real token from a session, verified the way every authenticated request is.
        let user_id = rt.block_on(common::seed_user(store.as_ref()));
        let issued = rt.block_on(common::start_session(&service, user_id));
        let token = issued.access_token;
        group.bench_function(format!("verify/{name}"), |b| {
            b.iter(|| {
                let claims = rt
                    .block_on(service.verify_access(black_box(&token)))
                    .expect("valid");
                black_box(claims)
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

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = tokens
}
criterion_main!(benches);
