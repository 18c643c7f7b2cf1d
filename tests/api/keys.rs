//! Signing keys: every algorithm family, JWKS for resource servers, rotation and retirement,
//! algorithm confusion.

use std::time::Duration;

use authd::config::Secret;
use authd::domain::jwt_algorithm::JwtAlgorithm;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, encode, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

use crate::helpers::{authd_cli, claims_of, spawn_app_with, strings_of, Backend, TestApp};
use crate::processes::TempDir;

fn asymmetric(algorithm: JwtAlgorithm) -> impl FnOnce(&mut authd::config::Settings) {
    move |s| {
        s.tokens.algorithm = algorithm;
        s.tokens.key_encryption_key = Secret::new("a-test-key-encryption-key-0123456789abcdef");
    }
}

async fn jwks(app: &TestApp) -> Value {
    let response = app.fetch("/.well-known/jwks.json").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    response.json().await.unwrap()
}

/// What a resource server does with nothing but the JWKS: find the key by `kid`, verify.
fn verify_like_a_resource_server(
    token: &str,
    jwks: &Value,
    app: &TestApp,
) -> Result<Value, String> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let jwk = set
        .find(header.kid.as_deref().ok_or("no kid")?)
        .ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[app.settings.tokens.issuer.as_str()]);
    validation.set_audience(&[app.settings.tokens.audience.as_str()]);
    decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

async fn every_algorithm_signs_tokens_a_resource_server_verifies_from_the_jwks(backend: Backend) {
    for algorithm in [
        JwtAlgorithm::RS256,
        JwtAlgorithm::PS384,
        JwtAlgorithm::ES256,
        JwtAlgorithm::ES384,
        JwtAlgorithm::EdDSA,
    ] {
        let app = spawn_app_with(backend, asymmetric(algorithm)).await;
        let account = app.account().await;
        let header = decode_header(&account.access_token).unwrap();
        assert_eq!(header.alg, algorithm.to_jsonwebtoken());
        let keys = jwks(&app).await;
        assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{algorithm:?}");
        assert_eq!(keys["keys"][0]["kid"], header.kid.clone().unwrap().as_str());
        assert_eq!(keys["keys"][0]["alg"], algorithm.name());
        let text = keys.to_string();
        assert!(!text.contains("\"d\""), "no private part is published");
        let claims = verify_like_a_resource_server(&account.access_token, &keys, &app).unwrap();
        assert_eq!(claims["sub"], account.user_id.to_string());
        assert_eq!(
            app.me(&account.access_token).await.status().as_u16(),
            200,
            "{algorithm:?}"
        );

        // The private key is stored encrypted: the row holds no DER private-key header.
        let blobs = app
            .query_blobs("SELECT private_key FROM signing_keys")
            .await;
        assert_eq!(blobs.len(), 1);
        assert!(!blobs[0]
            .windows(4)
            .any(|w| w == [0x30, 0x82, 0x04, 0xa4] || w == [0x02, 0x01, 0x00, 0x30]));
    }
}

async fn hs_tokens_publish_an_empty_jwks(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    assert_eq!(jwks(&app).await, serde_json::json!({ "keys": [] }));
}

async fn a_rotated_key_takes_over_and_the_old_one_retires_after_the_last_token_expires(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        asymmetric(JwtAlgorithm::ES256)(s);
        s.tokens.access_ttl_seconds = 2;
        s.tokens.refresh_ttl_seconds = 60;
        s.tokens.leeway_seconds = 0;
        s.tokens.key_refresh_seconds = 1;
    })
    .await;
    let account = app.account().await;
    let old_kid = decode_header(&account.access_token).unwrap().kid.unwrap();

    let (store, _) = authd::app::open_store(&app.settings, false).await.unwrap();
    let new_kid = authd::keys::rotate(store.as_ref(), &app.settings.tokens)
        .await
        .unwrap();
    assert_ne!(new_kid, old_kid);

    // Published by the next reload (1 s), while the old key still signs: a verifier that fetches
    // the JWKS now knows the key before any token carries it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kids = strings_of(&jwks(&app).await["keys"], "kid");
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    let (early, _) = app.login_tokens(&account.email).await;
    assert_eq!(decode_header(&early).unwrap().kid, Some(old_kid.clone()));

    // From key_refresh_seconds + 5 s after the rotation it signs; both keys verify.
    let (mut fresh, mut last_old) = (String::new(), early);
    for _ in 0..100 {
        let (access, _) = app.login_tokens(&account.email).await;
        if decode_header(&access).unwrap().kid.as_deref() == Some(new_kid.as_str()) {
            fresh = access;
            break;
        }
        last_old = access;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!fresh.is_empty(), "the rotated key never started signing");
    assert_eq!(app.me(&fresh).await.status().as_u16(), 200);
    assert_eq!(app.me(&last_old).await.status().as_u16(), 200);

    // Once every token the old key could have signed has expired, it is retired.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let kids = strings_of(&jwks(&app).await["keys"], "kid");
    assert_eq!(kids, [new_kid]);
}

async fn an_hs_token_signed_with_the_public_key_is_refused(backend: Backend) {
    let app = spawn_app_with(backend, asymmetric(JwtAlgorithm::RS256)).await;
    let account = app.account().await;
    let keys = jwks(&app).await;
    let kid = keys["keys"][0]["kid"].as_str().unwrap().to_string();
    let claims = claims_of(&account.access_token);
    // The classic confusion: HMAC keyed with what the verifier holds as the public key.
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid);
    for public_material in [
        keys["keys"][0].to_string(),
        keys["keys"][0]["n"].as_str().unwrap().to_string(),
    ] {
        let forged = encode(
            &header,
            &claims,
            &EncodingKey::from_secret(public_material.as_bytes()),
        )
        .unwrap();
        app.assert_access_refused(&forged).await;
    }
}

crate::backend_tests!(
    every_algorithm_signs_tokens_a_resource_server_verifies_from_the_jwks,
    hs_tokens_publish_an_empty_jwks,
    a_rotated_key_takes_over_and_the_old_one_retires_after_the_last_token_expires,
    an_hs_token_signed_with_the_public_key_is_refused,
);

#[test]
fn the_rotate_command_refuses_hs_keys_and_adds_asymmetric_ones() {
    let dir = TempDir::new("keys");
    let run_with = |algorithm: &str, key_encryption_key: &str| {
        authd_cli(&dir.0)
            .args(["keys", "rotate"])
            .env("AUTHD__TOKENS__KEY_ENCRYPTION_KEY", key_encryption_key)
            .env("AUTHD__TOKENS__ALGORITHM", algorithm)
            .output()
            .unwrap()
    };
    let run = |algorithm: &str| run_with(algorithm, "a-keys-test-encryption-key-0123456789ab");
    let hs = run("HS256");
    assert_eq!(hs.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&hs.stderr).contains("tokens.jwt_secret"));
    let ed = run("EdDSA");
    assert!(
        ed.status.success(),
        "{}",
        String::from_utf8_lossy(&ed.stderr)
    );
    assert!(String::from_utf8_lossy(&ed.stdout).starts_with("new signing key eddsa-"));
    // Under another key-encryption key the stored keys do not open: nothing is added, so no
    // node is left unable to load its ring.
    let mistyped = run_with("EdDSA", "another-keys-test-encryption-key-0123456789");
    assert_eq!(mistyped.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&mistyped.stderr).contains("do not open"));
    assert!(run("EdDSA").status.success());
}
