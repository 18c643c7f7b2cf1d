//! RFC 8725: only the configured algorithm, key, issuer and audience; time checked both ways.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{assert_error, claims_of, header_of, spawn_app, Backend};

fn sign(claims: &Value, algorithm: Algorithm, secret: &str, kid: Option<&str>) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_string);
    encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A token signed by hand (HS256), with whatever header: for the header fields jsonwebtoken's
/// `Header` cannot carry.
fn sign_with_header(header: &Value, claims: &Value, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap());
    let signing_input = format!("{}.{}", part(header), part(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

async fn access_tokens_carry_the_contract_claims(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let claims = claims_of(&account.access_token);
    for key in [
        "sub", "sid", "role", "iss", "aud", "iat", "nbf", "exp", "jti",
    ] {
        assert!(claims.get(key).is_some(), "{key} missing from {claims}");
    }
    assert_eq!(claims["sub"], account.user_id.to_string());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let header = header_of(&account.access_token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], "hs-1");
}

async fn forged_and_out_of_time_tokens_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let good = claims_of(&account.access_token);
    let secret = app.settings.tokens.jwt_secret.expose().to_string();
    let kid = Some("hs-1");
    let now = chrono::Utc::now().timestamp();
    let with = |patch: Value| {
        let mut claims = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };

    // A control: the same construction with the right inputs is accepted.
    let control = sign(
        &with(json!({ "jti": uuid::Uuid::new_v4() })),
        Algorithm::HS256,
        &secret,
        kid,
    );
    assert_eq!(app.me(&control).await.status().as_u16(), 200);
    let plain_header = json!({ "alg": "HS256", "typ": "JWT", "kid": "hs-1" });
    let by_hand = with(json!({ "jti": uuid::Uuid::new_v4() }));
    let by_hand = sign_with_header(&plain_header, &by_hand, &secret);
    assert_eq!(app.me(&by_hand).await.status().as_u16(), 200);
    // RFC 7515 §4.1.11: an extension marked critical that authd does not know is refused.
    let critical_header = json!({ "alg": "HS256", "typ": "JWT", "kid": "hs-1",
        "crit": ["exp-ext"], "exp-ext": true });
    let critical = sign_with_header(&critical_header, &good, &secret);

    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"hs-1"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good).unwrap())
    );
    let cases = [
        ("alg none", unsigned),
        ("critical extension", critical),
        (
            "wrong key",
            sign(
                &good,
                Algorithm::HS256,
                "another-secret-of-the-right-length-123456",
                kid,
            ),
        ),
        (
            "other algorithm",
            sign(&good, Algorithm::HS512, &secret, kid),
        ),
        (
            "unknown kid",
            sign(&good, Algorithm::HS256, &secret, Some("other")),
        ),
        ("no kid", sign(&good, Algorithm::HS256, &secret, None)),
        (
            "wrong issuer",
            sign(
                &with(json!({"iss": "evil"})),
                Algorithm::HS256,
                &secret,
                kid,
            ),
        ),
        (
            "wrong audience",
            sign(
                &with(json!({"aud": "other-api"})),
                Algorithm::HS256,
                &secret,
                kid,
            ),
        ),
        (
            "not yet valid",
            sign(
                &with(json!({"nbf": now + 3600})),
                Algorithm::HS256,
                &secret,
                kid,
            ),
        ),
        (
            "issued in the future",
            sign(
                &with(json!({"iat": now + 3600, "nbf": now + 3600, "exp": now + 4000})),
                Algorithm::HS256,
                &secret,
                kid,
            ),
        ),
        (
            "living longer than an access token",
            sign(
                &with(json!({"iat": now, "nbf": now, "exp": now + 365 * 86_400})),
                Algorithm::HS256,
                &secret,
                kid,
            ),
        ),
        ("garbage", "a.b.c".to_string()),
    ];
    for (case, token) in cases {
        let response = app.me(&token).await;
        assert_eq!(response.status().as_u16(), 401, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "token_invalid", "{case}");
    }

    let expired = sign(
        &with(json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600})),
        Algorithm::HS256,
        &secret,
        kid,
    );
    assert_error(app.me(&expired).await, 401, "token_expired").await;

    // Clock skew inside `tokens.leeway_seconds` (30) is tolerated both ways; beyond it, not.
    let leeway = app.settings.tokens.leeway_seconds as i64;
    let just_expired = sign(
        &with(
            json!({"iat": now - 900 - leeway / 2, "nbf": now - 900 - leeway / 2, "exp": now - leeway / 2, "jti": uuid::Uuid::new_v4()}),
        ),
        Algorithm::HS256,
        &secret,
        kid,
    );
    assert_eq!(app.me(&just_expired).await.status().as_u16(), 200);
    let slightly_early = sign(
        &with(json!({"nbf": now + leeway / 2, "jti": uuid::Uuid::new_v4()})),
        Algorithm::HS256,
        &secret,
        kid,
    );
    assert_eq!(app.me(&slightly_early).await.status().as_u16(), 200);
    let past_leeway = sign(
        &with(
            json!({"iat": now - 905 - leeway, "nbf": now - 905 - leeway, "exp": now - leeway - 5}),
        ),
        Algorithm::HS256,
        &secret,
        kid,
    );
    assert_error(app.me(&past_leeway).await, 401, "token_expired").await;
}

crate::backend_tests!(
    access_tokens_carry_the_contract_claims,
    forged_and_out_of_time_tokens_are_401,
);
