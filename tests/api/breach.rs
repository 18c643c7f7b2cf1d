//! Breached passwords: signup, change and reset refuse a password the range API knows, asking it
//! with a five-digit prefix only; an unreachable API fails open, or closed by config; a local
//! list works without the network. The range API is a fake on loopback.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, HttpRequest, HttpResponse};
use authd::config::{BreachFallback, Settings};
use sha1::{Digest, Sha1};

use crate::helpers::{assert_error, spawn_app_with, Backend, LocalServer, PASSWORD};
use crate::smtp::{use_sink, SmtpSink};

const BREACHED: &str = "Tr0ub4dor&3-breached";

fn sha1_hex(password: &str) -> String {
    Sha1::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// What the range API was asked: the prefix, and the `Add-Padding` header.
type Asked = Mutex<Vec<(String, Option<String>)>>;

/// A range API that knows `BREACHED`, and what it was asked.
struct RangeApi {
    url: String,
    asked: Arc<Asked>,
    _server: LocalServer,
}

async fn range(
    req: HttpRequest,
    prefix: web::Path<String>,
    asked: web::Data<Asked>,
) -> HttpResponse {
    let padding = req
        .headers()
        .get("Add-Padding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    asked.lock().unwrap().push((prefix.clone(), padding));
    let hash = sha1_hex(BREACHED);
    let mut lines = vec!["0018A45C4D1DEF81644B54AB7F969B88D65:1".to_string()];
    if hash.starts_with(prefix.as_str()) {
        lines.push(format!("{}:42", &hash[5..]));
    }
    // Padding: suffixes with a count of 0.
    lines.push("00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0".to_string());
    HttpResponse::Ok().body(lines.join("\r\n"))
}

impl RangeApi {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/range/",
            listener.local_addr().unwrap().port()
        );
        let asked = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::from(asked.clone());
        let server = LocalServer::serve(listener, move |cfg| {
            cfg.app_data(data.clone())
                .route("/range/{prefix}", web::get().to(range));
        });
        RangeApi {
            url,
            asked,
            _server: server,
        }
    }
}

fn checking_against(url: &str) -> impl FnOnce(&mut Settings) {
    let url = url.to_string();
    move |settings| {
        let breached = &mut settings.auth.breached_passwords;
        breached.enabled = true;
        breached.range_url = url;
        breached.timeout_ms = 1000;
    }
}

/// A URL nothing listens on.
fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/range/",
        listener.local_addr().unwrap().port()
    );
    drop(listener);
    url
}

async fn a_breached_password_is_refused_at_signup_change_and_reset(backend: Backend) {
    let api = RangeApi::start().await;
    let sink = SmtpSink::start();
    let url = api.url.clone();
    let app = spawn_app_with(backend, move |settings| {
        checking_against(&url)(settings);
        use_sink(settings, sink.port);
    })
    .await;

    let refused = app.signup("breached@example.com", BREACHED).await;
    let body = assert_error(refused, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "password");
    assert!(body["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("breach"));

    let account = app.account().await;
    let changed = app
        .change_password(&account.access_token, PASSWORD, BREACHED)
        .await;
    let body = assert_error(changed, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "newPassword");

    // Only five hex digits left authd, each time with padding asked for.
    let asked = api.asked.lock().unwrap().clone();
    assert!(
        asked.len() >= 3,
        "signup, the account's signup, the change: {asked:?}"
    );
    for (prefix, padding) in &asked {
        assert_eq!(prefix.len(), 5, "{prefix}");
        assert!(prefix.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(padding.as_deref(), Some("true"));
    }
    assert!(asked
        .iter()
        .any(|(prefix, _)| sha1_hex(BREACHED).starts_with(prefix)));
    assert!(!asked.iter().any(|(prefix, _)| prefix.len() > 5));

    // A reset link does not get spent on a refused password.
    let forgot = app.forgot_password(&account.email).await;
    assert_eq!(forgot.status().as_u16(), 202);
    // The account's verification mail, then the reset mail.
    let token = sink
        .wait_for(2)
        .await
        .iter()
        .find(|mail| mail.subject.contains("Reset"))
        .expect("the reset mail")
        .token();
    let reset = app.reset_password(&token, BREACHED).await;
    assert_error(reset, 400, "validation_failed").await;
    let reset = app.reset_password(&token, "a brand new passphrase").await;
    assert_eq!(reset.status().as_u16(), 200, "the link still works");
}

async fn an_unreachable_range_api_fails_open_or_closed_as_configured(backend: Backend) {
    let url = closed_url();
    let open = spawn_app_with(backend, checking_against(&url)).await;
    let signed_up = open.signup("open@example.com", PASSWORD).await;
    assert_eq!(
        signed_up.status().as_u16(),
        201,
        "fail open: the signup goes on"
    );

    let url = closed_url();
    let closed = spawn_app_with(backend, move |settings| {
        checking_against(&url)(settings);
        settings.auth.breached_passwords.on_unavailable = BreachFallback::Refuse;
    })
    .await;
    let refused = closed.signup("closed@example.com", PASSWORD).await;
    assert_error(refused, 503, "unavailable").await;
    let users = closed
        .query_integers("SELECT CAST(count(*) AS BIGINT) FROM users")
        .await;
    assert_eq!(users, vec![vec![0]], "nothing was made");
}

async fn a_local_list_refuses_without_the_network(backend: Backend) {
    let list = std::env::temp_dir().join(format!("authd-breached-{}.txt", uuid::Uuid::new_v4()));
    std::fs::write(&list, format!("{}:12\n", sha1_hex(BREACHED))).unwrap();
    let url = closed_url();
    let path = list.display().to_string();
    let app = spawn_app_with(backend, move |settings| {
        checking_against(&url)(settings);
        settings.auth.breached_passwords.offline_list = path;
    })
    .await;
    let refused = app.signup("listed@example.com", BREACHED).await;
    assert_error(refused, 400, "validation_failed").await;
    let accepted = app.signup("fine@example.com", PASSWORD).await;
    assert_eq!(accepted.status().as_u16(), 201);
    std::fs::remove_file(list).ok();
}

crate::backend_tests!(
    a_breached_password_is_refused_at_signup_change_and_reset,
    an_unreachable_range_api_fails_open_or_closed_as_configured,
    a_local_list_refuses_without_the_network,
);
