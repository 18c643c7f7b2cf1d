use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assert_refresh_token_in_body, refresh_cookie, refresh_cookie_line, spawn_app,
    strings_of, Backend, PASSWORD,
};

async fn signup_answers_201_with_the_user_an_access_token_and_a_refresh_cookie(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/auth/signup",
            &json!({ "email": "  Ada@Example.com ", "password": PASSWORD, "name": " Ada " }),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let cookie = refresh_cookie_line(response.headers()).expect("refresh cookie");
    for flag in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/auth",
        "Max-Age=604800",
    ] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "Ada@Example.com");
    assert_eq!(body["user"]["name"], "Ada");
    assert_eq!(body["user"]["role"], "user");
    assert_eq!(body["user"]["emailVerified"], false);
    assert!(body["user"]["id"]
        .as_str()
        .unwrap()
        .parse::<uuid::Uuid>()
        .is_ok());
    assert!(body["user"]["createdAt"].as_str().is_some());
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    assert!(body["accessToken"].as_str().unwrap().split('.').count() == 3);
    assert!(
        body.get("refreshToken").is_none(),
        "cookie transport keeps the token out of the body"
    );
}

async fn body_transport_also_returns_the_refresh_token_in_the_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let body =
        json!({ "email": "mobile@example.com", "password": PASSWORD, "tokenTransport": "body" });
    let response = app.post_json("/auth/signup", &body).await;
    assert_refresh_token_in_body(response, 201).await;
}

async fn passwords_are_stored_as_argon2id_never_in_clear(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let hashes = app
        .query_texts(&format!(
            "SELECT password_hash FROM users WHERE id = '{}'",
            account.user_id
        ))
        .await;
    let hash = hashes[0].clone().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}

async fn a_taken_email_is_409_email_taken_whatever_its_case(backend: Backend) {
    let app = spawn_app(backend).await;
    app.assert_signup_works("taken@example.com").await;
    let response = app.signup("TAKEN@example.com", PASSWORD).await;
    assert_error(response, 409, "email_taken").await;
}

async fn signup_reports_every_invalid_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/auth/signup",
            &json!({ "email": "not-an-email", "password": "short", "name": "x".repeat(201) }),
        )
        .await;
    let body = assert_error(response, 400, "validation_failed").await;
    let fields = strings_of(&body["details"], "field");
    assert_eq!(fields, ["email", "password", "name"]);

    let response = app.post_json("/auth/signup", &json!({})).await;
    let body = assert_error(response, 400, "validation_failed").await;
    assert_eq!(body["details"].as_array().unwrap().len(), 2, "{body}");
    // What is missing is said to be missing, not too short.
    assert_eq!(
        strings_of(&body["details"], "message"),
        ["is required", "is required"],
        "{body}"
    );

    let long = "x".repeat(129);
    let response = app.signup("long@example.com", &long).await;
    assert_error(response, 400, "validation_failed").await;
}

async fn login_works_with_any_case_of_the_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let response = app.login(&account.email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(refresh_cookie(response.headers()).is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], account.email.as_str());
    assert_eq!(body["tokenType"], "Bearer");
    let me = app.me(body["accessToken"].as_str().unwrap()).await;
    assert_eq!(me.status().as_u16(), 200);
}

async fn an_unknown_email_and_a_wrong_password_get_the_same_answer_and_the_same_hasher_work(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let account = app.account().await;

    let before = app.hasher.stats();
    let wrong_password = app.login(&account.email, "not the password at all").await;
    let after_wrong = app.hasher.stats();
    let unknown_email = app
        .login("nobody@example.com", "not the password at all")
        .await;
    let after_unknown = app.hasher.stats();

    assert_eq!(after_wrong.verifications - before.verifications, 1);
    assert_eq!(after_unknown.verifications - after_wrong.verifications, 1);
    assert_eq!(
        after_unknown.hashes, before.hashes,
        "a failed login hashes nothing new"
    );

    let a = assert_error(wrong_password, 401, "invalid_credentials").await;
    let b = assert_error(unknown_email, 401, "invalid_credentials").await;
    assert_eq!(a["error"], b["error"]);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&a), keys(&b));
}

async fn login_validates_its_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = assert_error(
        app.login("not-an-email", "").await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["details"].as_array().unwrap().len(), 2);
    let huge = "p".repeat(2000);
    assert_error(
        app.login("a@example.com", &huge).await,
        400,
        "validation_failed",
    )
    .await;
    // The bound is the OpenAPI document's `maxLength`, in characters: at it, an answer about
    // the credentials; past it, about the field.
    let document: Value = app.fetch("/openapi.json").await.json().await.unwrap();
    let limit = document["components"]["schemas"]["LoginRequest"]["properties"]["password"]
        ["maxLength"]
        .as_u64()
        .unwrap() as usize;
    let at_limit = "\u{00E9}".repeat(limit);
    let refused = app.login("a@example.com", &at_limit).await;
    assert_error(refused, 401, "invalid_credentials").await;
    let past = "\u{00E9}".repeat(limit + 1);
    let body = assert_error(
        app.login("a@example.com", &past).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["details"][0]["field"], "password");
    // An address of an older, looser rule still reaches its account (only new ones are held
    // to a deliverable address): no 400 for its shape.
    assert_error(
        app.login("a..b@example.com", "whatever").await,
        401,
        "invalid_credentials",
    )
    .await;
}

async fn me_returns_the_profile_of_the_token_holder(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let response = app.me(&account.access_token).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], account.user_id.to_string());
    assert_eq!(body["email"], account.email.as_str());
    for key in ["name", "role", "emailVerified", "createdAt", "updatedAt"] {
        assert!(body.get(key).is_some(), "{key} missing from {body}");
    }
}

async fn me_without_a_token_is_401_unauthorized(backend: Backend) {
    let app = spawn_app(backend).await;
    // No credentials, or credentials of another scheme: 401, naming the scheme to use.
    for headers in [vec![], vec![("Authorization", "Basic abc")]] {
        let response = app.fetch_with_headers("/me", &headers).await;
        let scheme = &response.headers()["www-authenticate"];
        assert_eq!(scheme, "Bearer", "with {headers:?}");
        assert_error(response, 401, "unauthorized").await;
    }
}

crate::backend_tests!(
    signup_answers_201_with_the_user_an_access_token_and_a_refresh_cookie,
    body_transport_also_returns_the_refresh_token_in_the_body,
    passwords_are_stored_as_argon2id_never_in_clear,
    a_taken_email_is_409_email_taken_whatever_its_case,
    signup_reports_every_invalid_field,
    login_works_with_any_case_of_the_email,
    an_unknown_email_and_a_wrong_password_get_the_same_answer_and_the_same_hasher_work,
    login_validates_its_input,
    me_returns_the_profile_of_the_token_holder,
    me_without_a_token_is_401_unauthorized,
);
