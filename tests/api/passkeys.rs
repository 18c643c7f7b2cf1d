//! Passkeys through real WebAuthn ceremonies: a software authenticator (webauthn-authenticator-rs
//! `SoftPasskey`, which signs with its own key and claims user verification) answers the options
//! authd sends, over HTTP, as a browser would.

use reqwest::Method;
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;

use crate::helpers::{
    access_token_of, assert_error, claims_of, refresh_cookie, spawn_app, spawn_app_with, Backend,
    TestApp, PASSWORD,
};

/// The origin of the frontend's pages (`app.frontend_url`), where the ceremonies run.
const ORIGIN: &str = "http://localhost:3000";

fn origin() -> webauthn_rs::prelude::Url {
    webauthn_rs::prelude::Url::parse(ORIGIN).unwrap()
}

/// A registration as authd answered it, and what the authenticator keeps of it.
struct Registration {
    answer: Value,
    /// `authenticatorSelection.residentKey` of the options.
    resident_key: Value,
    /// `user.id` of the options, base64url: what a discoverable passkey names its account by.
    user_handle: String,
    credential_id: String,
}

/// A passkey its authenticator keeps (discoverable), as platform authenticators and password
/// managers do: to options that list no credential it answers with the one it holds for the site,
/// naming its account (the user handle). `SoftPasskey` keeps no resident keys, so this adds the two
/// things it lacks; neither is covered by the signature, which is still the authenticator's own.
struct ResidentPasskey {
    authenticator: SoftPasskey,
    registration: Registration,
}

impl ResidentPasskey {
    /// Its answer to `options`, whatever they list (a forger's authenticator reads nothing).
    fn answer(&mut self, options: &Value) -> Value {
        let mut options = options.clone();
        let id = &self.registration.credential_id;
        options["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": id }]);
        let mut credential = assert_with(&mut self.authenticator, &options);
        credential["response"]["userHandle"] = json!(self.registration.user_handle);
        credential
    }
}

/// The authenticator answers `options` (from `navigator.credentials.get`'s point of view).
fn assert_with(authenticator: &mut SoftPasskey, options: &Value) -> Value {
    let request = serde_json::from_value(options.clone()).expect("request options");
    let credential = authenticator
        .do_authentication(origin(), request)
        .expect("the authenticator signs");
    serde_json::to_value(credential).unwrap()
}

impl TestApp {
    /// `POST /auth/passkey/options` for `email`: the ceremony (`ceremonyId` and `options`).
    async fn passkey_options(&self, email: &str) -> Value {
        let started = self
            .post_json("/auth/passkey/options", &json!({ "email": email }))
            .await;
        assert_eq!(started.status().as_u16(), 200, "sign-in options");
        started.json().await.unwrap()
    }

    /// Registers the passkey `authenticator` makes on the account (named, if `name` is given):
    /// the answer, and what the authenticator keeps of it.
    async fn register_with(
        &self,
        token: &str,
        name: Option<&str>,
        authenticator: &mut SoftPasskey,
    ) -> Registration {
        let started = self.post_bearer("/me/mfa/passkey-options", token).await;
        assert_eq!(started.status().as_u16(), 200, "registration options");
        let started: Value = started.json().await.unwrap();
        let options = &started["options"]["publicKey"];
        let request = serde_json::from_value(started["options"].clone()).unwrap();
        let credential = authenticator
            .do_registration(origin(), request)
            .expect("the authenticator registers");
        let credential = serde_json::to_value(credential).unwrap();
        let mut body = json!({ "ceremonyId": started["ceremonyId"], "credential": credential });
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        let response = self
            .authed(Method::POST, "/me/mfa/passkeys", token, Some(body))
            .await;
        assert_eq!(response.status().as_u16(), 201, "registered");
        Registration {
            answer: response.json().await.unwrap(),
            resident_key: options["authenticatorSelection"]["residentKey"].clone(),
            user_handle: options["user"]["id"].as_str().unwrap().to_string(),
            credential_id: credential["id"].as_str().unwrap().to_string(),
        }
    }

    /// Registers a passkey its authenticator keeps.
    async fn register_resident(&self, token: &str) -> ResidentPasskey {
        let mut authenticator = SoftPasskey::new(true);
        let registration = self.register_with(token, None, &mut authenticator).await;
        ResidentPasskey {
            authenticator,
            registration,
        }
    }

    /// `POST /auth/passkey/options` without an address: the ceremony.
    async fn discoverable_options(&self) -> Value {
        let started = self.post_json("/auth/passkey/options", &json!({})).await;
        assert_eq!(started.status().as_u16(), 200, "sign-in options");
        started.json().await.unwrap()
    }

    /// Registers a new passkey on the account: the authenticator that holds it, and the answer.
    async fn register_passkey(&self, token: &str, name: &str) -> (SoftPasskey, Value) {
        let mut authenticator = SoftPasskey::new(true);
        let registered = self
            .register_with(token, Some(name), &mut authenticator)
            .await;
        (authenticator, registered.answer)
    }

    /// A passwordless ceremony for `email` answered by `authenticator`: the body of
    /// `POST /auth/passkey/login` (`ceremonyId` and `credential`).
    async fn passkey_answer(&self, email: &str, authenticator: &mut SoftPasskey) -> Value {
        let started = self.passkey_options(email).await;
        let credential = assert_with(authenticator, &started["options"]);
        json!({ "ceremonyId": started["ceremonyId"], "credential": credential })
    }

    /// Passwordless sign-in with `authenticator`: the answer to `POST /auth/passkey/login`.
    async fn passkey_login(
        &self,
        email: &str,
        authenticator: &mut SoftPasskey,
    ) -> reqwest::Response {
        let body = self.passkey_answer(email, authenticator).await;
        self.post_json("/auth/passkey/login", &body).await
    }

    /// Steps the session of `token` up with the passkey alone: its fresh access token.
    async fn step_up_with_passkey(&self, token: &str, authenticator: &mut SoftPasskey) -> String {
        let options: Value = self
            .post_bearer("/auth/reauthenticate/passkey-options", token)
            .await
            .json()
            .await
            .unwrap();
        let credential = assert_with(authenticator, &options["options"]);
        let body = json!({ "ceremonyId": options["ceremonyId"], "credential": credential });
        self.step_up(token, body).await
    }
}

async fn a_passkey_registers_and_signs_in_without_a_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let (mut authenticator, registered) =
        app.register_passkey(&account.access_token, "Laptop").await;
    assert_eq!(registered["passkey"]["name"], "Laptop");
    assert_eq!(
        registered["recoveryCodes"].as_array().map(Vec::len),
        Some(10),
        "the first factor comes with recovery codes"
    );
    let listed = app
        .get_json("/me/mfa/passkeys", &account.access_token)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0]["lastUsedAt"].is_null());

    let response = app.passkey_login(&account.email, &mut authenticator).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(refresh_cookie(response.headers()).is_some());
    let body: Value = response.json().await.unwrap();
    let claims = claims_of(body["accessToken"].as_str().unwrap());
    assert_eq!(
        claims["aal"], 2,
        "a verified passkey is two kinds of factor"
    );
    assert_eq!(claims["amr"], json!(["hwk", "mfa"]));
    let listed = app
        .get_json("/me/mfa/passkeys", &account.access_token)
        .await;
    assert!(listed[0]["lastUsedAt"].is_string(), "its use is recorded");

    // Another authenticator holds no passkey of this account: refused.
    let mut stranger = SoftPasskey::new(true);
    let started = app.passkey_options(&account.email).await;
    let unknown = stranger.do_authentication(
        origin(),
        serde_json::from_value(started["options"].clone()).unwrap(),
    );
    assert!(
        unknown.is_err(),
        "the stranger has none of the allowed credentials"
    );
}

async fn a_ceremony_works_once_and_a_replayed_answer_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let (mut authenticator, _) = app.register_passkey(&account.access_token, "Key").await;
    let body = app.passkey_answer(&account.email, &mut authenticator).await;
    let first = app.post_json("/auth/passkey/login", &body).await;
    assert_eq!(first.status().as_u16(), 200);
    let replay = app.post_json("/auth/passkey/login", &body).await;
    assert_error(replay, 401, "invalid_credentials").await;
    // The same answer against a fresh ceremony: the challenge differs.
    let fresh = app.passkey_options(&account.email).await;
    let body = json!({ "ceremonyId": fresh["ceremonyId"], "credential": body["credential"] });
    let replay = app.post_json("/auth/passkey/login", &body).await;
    assert_error(replay, 401, "invalid_credentials").await;
    let junk = app
        .post_json(
            "/auth/passkey/login",
            &json!({ "ceremonyId": fresh["ceremonyId"], "credential": { "id": 1 } }),
        )
        .await;
    assert_error(junk, 400, "validation_failed").await;
}

/// Two ceremonies under way at once, answered in turn: the authenticator's counter is one higher
/// in the second answer. Used first, it moves the stored counter past the first answer's, which
/// then counts for nothing, as a cloned authenticator's answers would not.
async fn an_answer_whose_counter_was_passed_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let (mut authenticator, _) = app.register_passkey(&account.access_token, "Key").await;
    let earlier = app.passkey_answer(&account.email, &mut authenticator).await;
    let later = app.passkey_answer(&account.email, &mut authenticator).await;
    let response = app.post_json("/auth/passkey/login", &later).await;
    assert_eq!(response.status().as_u16(), 200);
    let response = app.post_json("/auth/passkey/login", &earlier).await;
    assert_error(response, 401, "invalid_credentials").await;
}

/// A passkey that is the account's last way in (no password, no other passkey, no identity)
/// stays: removing it is 409 `last_sign_in_method`, as unlinking a last identity is.
async fn the_last_way_in_is_not_removed(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let (mut authenticator, registered) = app.register_passkey(&account.access_token, "Only").await;
    let id = registered["passkey"]["id"].as_str().unwrap().to_string();
    app.execute(&format!(
        "UPDATE users SET password_hash = '{}' WHERE id = '{}'",
        authd::domain::password::NO_PASSWORD,
        account.user_id
    ))
    .await;
    let signed_in = app.passkey_login(&account.email, &mut authenticator).await;
    let token = access_token_of(signed_in).await;
    let path = format!("/me/mfa/passkeys/{id}");
    let refused = app.delete(&path, &token).await;
    assert_error(refused, 409, "last_sign_in_method").await;
    // With another passkey, either may go, but not both, even asked for at once.
    let (_, spare) = app.register_passkey(&token, "Spare").await;
    let spare_path = format!(
        "/me/mfa/passkeys/{}",
        spare["passkey"]["id"].as_str().unwrap()
    );
    let (one, other) = tokio::join!(app.delete(&path, &token), app.delete(&spare_path, &token));
    let mut statuses = [one.status().as_u16(), other.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 409]);
}

async fn an_address_without_passkeys_gets_options_of_the_same_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let (_, _) = app.register_passkey(&account.access_token, "Key").await;
    let shape = |options: &Value| -> Vec<String> {
        let public_key = options["publicKey"].as_object().unwrap();
        let mut keys: Vec<String> = public_key.keys().cloned().collect();
        keys.sort();
        keys.push(format!(
            "{} allowed",
            public_key["allowCredentials"].as_array().unwrap().len()
        ));
        keys
    };
    let known = app.passkey_options(&account.email).await;
    let unknown = app.passkey_options("nobody@example.com").await["options"].clone();
    assert_eq!(shape(&known["options"]), shape(&unknown));
    for field in ["rpId", "timeout", "userVerification"] {
        assert_eq!(
            known["options"]["publicKey"][field], unknown["publicKey"][field],
            "{field}"
        );
    }
    let outer = |options: &Value| {
        let mut keys: Vec<String> = options.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(outer(&known["options"]), outer(&unknown));
    let again = app.passkey_options("nobody@example.com").await["options"].clone();
    assert_eq!(
        unknown["publicKey"]["allowCredentials"], again["publicKey"]["allowCredentials"],
        "the stand-in credential is stable, as a real one would be"
    );
    // Nothing signs in through a stand-in.
    let mut authenticator = SoftPasskey::new(true);
    let response = app
        .passkey_login_any("nobody@example.com", &mut authenticator)
        .await;
    assert_error(response, 401, "invalid_credentials").await;
    // Nor does a kept passkey of another account, which names its own.
    let other = app.account().await;
    let mut passkey = app.register_resident(&other.access_token).await;
    let stand_in = app.passkey_options("nobody@example.com").await;
    let credential = passkey.answer(&stand_in["options"]);
    let body = json!({ "ceremonyId": stand_in["ceremonyId"], "credential": credential });
    let response = app.post_json("/auth/passkey/login", &body).await;
    assert_error(response, 401, "invalid_credentials").await;
}

async fn a_kept_passkey_signs_in_without_an_address(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let mut passkey = app.register_resident(&account.access_token).await;
    assert_eq!(
        passkey.registration.resident_key, "preferred",
        "registration asks the authenticator to keep the passkey"
    );

    let started = app.discoverable_options().await;
    let options = &started["options"];
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert!(
        options.get("mediation").is_none(),
        "the page chooses a button or autofill"
    );
    let no_body = app.anonymous(Method::POST, "/auth/passkey/options").await;
    assert_eq!(no_body.status().as_u16(), 200, "no body is no address");
    let credential = passkey.answer(options);
    let body = json!({ "ceremonyId": started["ceremonyId"], "credential": credential });
    let response = app.post_json("/auth/passkey/login", &body).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(refresh_cookie(response.headers()).is_some());
    let signed_in: Value = response.json().await.unwrap();
    assert_eq!(signed_in["user"]["email"], account.email.as_str());
    let claims = claims_of(signed_in["accessToken"].as_str().unwrap());
    assert_eq!(claims["sub"], account.user_id.to_string());
    assert_eq!(
        (claims["aal"].clone(), claims["amr"].clone()),
        (json!(2), json!(["hwk", "mfa"]))
    );
    let replay = app.post_json("/auth/passkey/login", &body).await;
    assert_error(replay, 401, "invalid_credentials").await;

    // The answer names the account; the passkey must be that account's.
    let other = app.account().await;
    let other_handle = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(other.user_id.as_bytes())
    };
    let started = app.discoverable_options().await;
    let mut credential = passkey.answer(&started["options"]);
    credential["response"]["userHandle"] = json!(other_handle);
    let body = json!({ "ceremonyId": started["ceremonyId"], "credential": credential });
    let response = app.post_json("/auth/passkey/login", &body).await;
    assert_error(response, 401, "invalid_credentials").await;
    // An answer naming no account.
    let started = app.discoverable_options().await;
    let mut credential = passkey.answer(&started["options"]);
    credential["response"]["userHandle"] = Value::Null;
    let body = json!({ "ceremonyId": started["ceremonyId"], "credential": credential });
    let response = app.post_json("/auth/passkey/login", &body).await;
    assert_error(response, 401, "invalid_credentials").await;

    // A locked account's passkey opens nothing.
    let admin = app.admin().await;
    app.lock_user(&admin.access_token, account.user_id).await;
    let started = app.discoverable_options().await;
    let credential = passkey.answer(&started["options"]);
    let body = json!({ "ceremonyId": started["ceremonyId"], "credential": credential });
    let response = app.post_json("/auth/passkey/login", &body).await;
    assert_error(response, 401, "invalid_credentials").await;
}

impl TestApp {
    /// A passwordless attempt whose authenticator may hold nothing allowed: it answers with its
    /// own credential if it has none (a forgery attempt).
    async fn passkey_login_any(
        &self,
        email: &str,
        authenticator: &mut SoftPasskey,
    ) -> reqwest::Response {
        let started = self.passkey_options(email).await;
        // Register the authenticator with some other account, and answer with that passkey.
        let other = self.account().await;
        self.register_with(&other.access_token, None, authenticator)
            .await;
        let own = self.passkey_answer(&other.email, authenticator).await;
        let body = json!({ "ceremonyId": started["ceremonyId"], "credential": own["credential"] });
        self.post_json("/auth/passkey/login", &body).await
    }
}

async fn a_passkey_is_a_second_factor_after_the_password_and_steps_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.account().await;
    let (mut authenticator, _) = app.register_passkey(&account.access_token, "Phone").await;

    let login = app.login(&account.email, PASSWORD).await;
    let login: Value = login.json().await.unwrap();
    assert_eq!(login["mfaRequired"], true);
    assert_eq!(login["methods"], json!(["passkey", "recovery_code"]));
    let mfa_token = login["mfaToken"].as_str().unwrap();
    let options: Value = app
        .post_json(
            "/auth/mfa/passkey-options",
            &json!({ "mfaToken": mfa_token }),
        )
        .await
        .json()
        .await
        .unwrap();
    let credential = assert_with(&mut authenticator, &options["options"]);
    let done = app
        .post_json(
            "/auth/mfa/verify",
            &json!({ "mfaToken": mfa_token, "credential": credential }),
        )
        .await;
    assert_eq!(done.status().as_u16(), 200);
    let access = &access_token_of(done).await;
    assert_eq!(claims_of(access)["amr"], json!(["pwd", "hwk", "mfa"]));

    // Step-up with the passkey alone, for the level-1 signup session.
    let level_one = &account.access_token;
    let removal_path = {
        let listed = app.get_json("/me/mfa/passkeys", access).await;
        format!("/me/mfa/passkeys/{}", listed[0]["id"].as_str().unwrap())
    };
    assert_error(
        app.delete(&removal_path, level_one).await,
        403,
        "reauthentication_required",
    )
    .await;
    let stepped_up = &app
        .step_up_with_passkey(level_one, &mut authenticator)
        .await;
    assert_eq!(claims_of(stepped_up)["aal"], 2);

    let renamed = app
        .patch(&removal_path, stepped_up, json!({ "name": "Old phone" }))
        .await;
    assert_eq!(renamed.status().as_u16(), 200);
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(renamed["name"], "Old phone");
    // The one field of the update is required, and a misspelt one refused: neither renames.
    for body in [json!({}), json!({ "Name": "x" })] {
        let refused = app.patch(&removal_path, stepped_up, body).await;
        assert_error(refused, 400, "validation_failed").await;
    }
    let listed = app.get_json("/me/mfa/passkeys", stepped_up).await;
    assert_eq!(listed[0]["name"], "Old phone");
    let removed = app.delete(&removal_path, stepped_up).await;
    assert_eq!(removed.status().as_u16(), 204);
    let status = app.get_json("/me/mfa", stepped_up).await;
    assert_eq!(status["passkeys"], 0);
    assert_eq!(
        status["recoveryCodesLeft"], 0,
        "the codes go with the last factor"
    );
    app.assert_login_works(&account.email, PASSWORD).await;
    // Someone else's passkey id is "not found".
    assert_error(
        app.delete(&removal_path, stepped_up).await,
        404,
        "not_found",
    )
    .await;
}

/// `auth.mfa.required = "everyone"`: a held session registers a passkey, then gives it to step
/// up, and is let through.
async fn a_held_session_enrols_a_passkey_and_steps_up_with_it(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.auth.mfa.required = authd::domain::assurance::MfaRequirement::Everyone;
    })
    .await;
    let account = app.account().await;
    let held = &account.access_token;
    app.assert_held_to_enrolment(held).await;
    let (mut authenticator, _) = app.register_passkey(held, "Phone").await;
    app.assert_held_to_enrolment(held).await;
    let stepped_up = app.step_up_with_passkey(held, &mut authenticator).await;
    assert_eq!(app.get_status("/auth/sessions", &stepped_up).await, 200);
}

crate::backend_tests!(
    a_passkey_registers_and_signs_in_without_a_password,
    a_ceremony_works_once_and_a_replayed_answer_is_refused,
    a_kept_passkey_signs_in_without_an_address,
    an_answer_whose_counter_was_passed_is_refused,
    the_last_way_in_is_not_removed,
    an_address_without_passkeys_gets_options_of_the_same_shape,
    a_passkey_is_a_second_factor_after_the_password_and_steps_up,
    a_held_session_enrols_a_passkey_and_steps_up_with_it,
);
