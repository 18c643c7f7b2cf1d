//! An OpenID Connect provider (and a GitHub) on 127.0.0.1, in the test process: discovery, keys,
//! an authorization endpoint that consents at once, a token endpoint that checks the code, PKCE,
//! the redirect URI and the client, and GitHub's `/user` and `/user/emails`. ID tokens are signed
//! RS256 with a key made for the test run; a test can make the next token wrong in one way.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::{web, HttpRequest, HttpResponse};
use authd::domain::jwt_algorithm::JwtAlgorithm;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::LocalServer;

pub const CLIENT_ID: &str = "authd-test-client";
pub const CLIENT_SECRET: &str = "authd-test-client-secret";
pub const NATIVE_CLIENT_ID: &str = "authd-test-ios-app";

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct Person {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

impl Person {
    pub fn new(email: &str) -> Self {
        Person {
            subject: format!("sub-{}", Uuid::new_v4().simple()),
            email: Some(email.to_string()),
            email_verified: true,
            name: Some("Ada Lovelace".into()),
        }
    }

    pub fn unverified(email: &str) -> Self {
        Person {
            email_verified: false,
            ..Person::new(email)
        }
    }
}

/// One way to make the next ID token wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    WrongIssuer,
    WrongAudience,
    WrongNonce,
    Expired,
    AlgNone,
    UnknownKid,
    /// Signed with a key the provider does not publish.
    ForeignKey,
    /// HS256 keyed with the client secret: what OpenID Connect allows a provider, and authd does
    /// not (only asymmetric signatures).
    ClientSecretHmac,
    /// `iat` an hour ahead.
    IssuedInTheFuture,
    /// `exp` thirty years ahead (the token would be remembered as used for as long).
    LivesForYears,
}

struct Grant {
    person: Person,
    nonce: Option<String>,
    challenge: Option<String>,
    redirect_uri: String,
}

#[derive(Default)]
struct State {
    issuer: String,
    next_person: Option<Person>,
    forgery: Option<Forgery>,
    deny: bool,
    grants: HashMap<String, Grant>,
    used_codes: HashSet<String>,
    github_tokens: HashMap<String, Person>,
    /// Client secrets presented to the token endpoint, for the Apple test.
    client_secrets: Vec<String>,
}

pub struct FakeProvider {
    pub issuer: String,
    state: Arc<Mutex<State>>,
    _server: LocalServer,
}

struct Keys {
    signing: EncodingKey,
    foreign: EncodingKey,
    jwk: Value,
}

const KID: &str = "fake-provider-key";

/// RSA keys made once per test run (generating one takes a moment).
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (signing, mut jwk) = rsa_key();
        let (foreign, _) = rsa_key();
        jwk["kid"] = json!(KID);
        jwk["alg"] = json!("RS256");
        jwk["use"] = json!("sig");
        Keys {
            signing,
            foreign,
            jwk,
        }
    })
}

const KEK: &[u8] = b"fake-provider-key-encryption-key-0123456789";

/// A key pair made by authd's own key generation: the private key for jsonwebtoken, the JWK.
fn rsa_key() -> (EncodingKey, Value) {
    let stored = authd::keys::generate(JwtAlgorithm::RS256, KEK).expect("an RSA key");
    let der = authd::keys::decrypt(&stored.private_key, KEK, &stored.kid).expect("it opens");
    let jwk: Value = serde_json::from_str(&stored.public_jwk).expect("a JWK");
    (EncodingKey::from_rsa_der(&der), jwk)
}

/// An ES256 key as Apple hands a team: the PKCS#8 PEM for authd's config, the public JWK.
pub fn apple_team_key() -> (String, Value) {
    let stored = authd::keys::generate(JwtAlgorithm::ES256, KEK).expect("an EC key");
    let der = authd::keys::decrypt(&stored.private_key, KEK, &stored.kid).expect("it opens");
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    (
        pem,
        serde_json::from_str(&stored.public_jwk).expect("a JWK"),
    )
}

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State {
            issuer: issuer.clone(),
            ..State::default()
        }));
        let shared = web::Data::from(state.clone());
        let server = LocalServer::serve(listener, move |cfg| {
            cfg.app_data(shared.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks", web::get().to(jwks))
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
                .route("/user", web::get().to(github_user))
                .route("/user/emails", web::get().to(github_emails));
        });
        FakeProvider {
            issuer,
            state,
            _server: server,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// The person the next authorization vouches for.
    pub fn signs_in(&self, person: &Person) {
        self.with(|s| s.next_person = Some(person.clone()));
    }

    /// The next ID token is wrong in this way.
    pub fn forge_next(&self, forgery: Forgery) {
        self.with(|s| s.forgery = Some(forgery));
    }

    /// The next authorization is refused by the user.
    pub fn deny_next(&self) {
        self.with(|s| s.deny = true);
    }

    pub fn client_secrets(&self) -> Vec<String> {
        self.with(|s| s.client_secrets.clone())
    }

    /// An ID token as a native app would get it from the provider's SDK.
    pub fn id_token_for_app(&self, person: &Person, audience: &str, nonce: &str) -> String {
        let mut state = self.state.lock().unwrap();
        let forgery = state.forgery.take();
        sign(&state.issuer, person, audience, Some(nonce), forgery)
    }
}

fn sign(
    issuer: &str,
    person: &Person,
    audience: &str,
    nonce: Option<&str>,
    forgery: Option<Forgery>,
) -> String {
    let now = chrono::Utc::now().timestamp();
    let issuer = if forgery == Some(Forgery::WrongIssuer) {
        "http://evil.example"
    } else {
        issuer
    };
    let audience = if forgery == Some(Forgery::WrongAudience) {
        "someone-else"
    } else {
        audience
    };
    let nonce = if forgery == Some(Forgery::WrongNonce) {
        Some("not-the-nonce")
    } else {
        nonce
    };
    let (iat, exp) = match forgery {
        Some(Forgery::Expired) => (now - 7200, now - 3600),
        Some(Forgery::IssuedInTheFuture) => (now + 3600, now + 4200),
        Some(Forgery::LivesForYears) => (now, now + 30 * 365 * 86_400),
        _ => (now, now + 600),
    };
    let claims = json!({
        "iss": issuer,
        "sub": person.subject,
        "aud": audience,
        "iat": iat,
        "exp": exp,
        "nonce": nonce,
        "email": person.email,
        "email_verified": person.email_verified,
        "name": person.name,
    });
    if forgery == Some(Forgery::AlgNone) {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        return format!("{header}.{payload}.");
    }
    if forgery == Some(Forgery::ClientSecretHmac) {
        let key = EncodingKey::from_secret(CLIENT_SECRET.as_bytes());
        return jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("signs");
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(match forgery {
        Some(Forgery::UnknownKid) => "no-such-key".to_string(),
        _ => KID.to_string(),
    });
    let key = if forgery == Some(Forgery::ForeignKey) {
        &keys().foreign
    } else {
        &keys().signing
    };
    jsonwebtoken::encode(&header, &claims, key).expect("signs")
}

type Shared = web::Data<Mutex<State>>;

async fn discovery(state: Shared) -> HttpResponse {
    let issuer = state.lock().unwrap().issuer.clone();
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

async fn jwks() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "keys": [keys().jwk] }))
}

async fn authorize(state: Shared, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let redirect_uri = query.get("redirect_uri").cloned().unwrap_or_default();
    let mut location = url::Url::parse(&redirect_uri).expect("a redirect URI");
    if let Some(value) = query.get("state") {
        location.query_pairs_mut().append_pair("state", value);
    }
    if std::mem::take(&mut state.deny) {
        location
            .query_pairs_mut()
            .append_pair("error", "access_denied");
    } else {
        let person = state
            .next_person
            .clone()
            .expect("the test named who signs in");
        let code = Uuid::new_v4().simple().to_string();
        let challenge = match query.get("code_challenge_method").map(String::as_str) {
            Some("S256") => query.get("code_challenge").cloned(),
            _ => None,
        };
        state.grants.insert(
            code.clone(),
            Grant {
                person,
                nonce: query.get("nonce").cloned(),
                challenge,
                redirect_uri,
            },
        );
        location.query_pairs_mut().append_pair("code", &code);
    }
    HttpResponse::Found()
        .insert_header(("Location", location.to_string()))
        .finish()
}

fn invalid_grant(description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "error": "invalid_grant",
        "error_description": description,
    }))
}

/// The client's id and secret, from Basic authentication or the form.
fn client_of(req: &HttpRequest, form: &HashMap<String, String>) -> (String, String) {
    let basic = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let decode = |s: &str| {
        url::form_urlencoded::parse(s.as_bytes())
            .next()
            .map(|(k, _)| k.to_string())
            .unwrap_or_default()
    };
    match basic.and_then(|b| b.split_once(':').map(|(i, s)| (decode(i), decode(s)))) {
        Some(pair) => pair,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    }
}

async fn token(
    req: HttpRequest,
    state: Shared,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let (client_id, secret) = client_of(&req, &form);
    state.client_secrets.push(secret.clone());
    if client_id != CLIENT_ID || (secret != CLIENT_SECRET && !secret.contains('.')) {
        return HttpResponse::Unauthorized().json(json!({ "error": "invalid_client" }));
    }
    let code = form.get("code").cloned().unwrap_or_default();
    if !state.used_codes.insert(code.clone()) {
        return invalid_grant("the code was used before");
    }
    let Some(grant) = state.grants.remove(&code) else {
        return invalid_grant("unknown code");
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return invalid_grant("redirect_uri mismatch");
    }
    if let Some(challenge) = &grant.challenge {
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return invalid_grant("PKCE verification failed");
        }
    }
    let forgery = state.forgery.take();
    let id_token = sign(
        &state.issuer,
        &grant.person,
        CLIENT_ID,
        grant.nonce.as_deref(),
        forgery,
    );
    let access_token = Uuid::new_v4().simple().to_string();
    state
        .github_tokens
        .insert(access_token.clone(), grant.person.clone());
    HttpResponse::Ok().json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token,
    }))
}

fn github_person(req: &HttpRequest, state: &Shared) -> Option<Person> {
    let token = req
        .headers()
        .get("Authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .to_string();
    state.lock().unwrap().github_tokens.get(&token).cloned()
}

async fn github_user(req: HttpRequest, state: Shared) -> HttpResponse {
    match github_person(&req, &state) {
        // GitHub's ids are numbers; the subject's digits stand in for one.
        Some(person) => HttpResponse::Ok().json(json!({
            "id": person.subject.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 1_000_000_000,
            "login": "ada",
            "name": person.name,
            "email": null,
        })),
        None => HttpResponse::Unauthorized().finish(),
    }
}

async fn github_emails(req: HttpRequest, state: Shared) -> HttpResponse {
    match github_person(&req, &state) {
        Some(person) => HttpResponse::Ok().json(json!([
            { "email": "old-address@example.com", "primary": false, "verified": true },
            { "email": person.email, "primary": true, "verified": person.email_verified },
        ])),
        None => HttpResponse::Unauthorized().finish(),
    }
}

/// Apple's client secret as the fake received it, checked against the team's public key.
pub fn verify_apple_secret(secret: &str, team_jwk: &Value, issuer: &str) -> Value {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(team_jwk.clone()).expect("a JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("a key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[issuer]);
    validation.set_issuer(&["TEAM123456"]);
    jsonwebtoken::decode::<Value>(secret, &key, &validation)
        .expect("Apple's client secret verifies")
        .claims
}
