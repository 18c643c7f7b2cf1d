//! Sign-in with other providers, against the in-process provider of `fake_provider`: the browser's
//! round trip (start, the provider, the callback), native apps' ID tokens, linking and unlinking,
//! and every way an answer can be forged or replayed. Nothing here reaches the internet.

use std::collections::HashMap;

use authd::config::{NativeNonces, OAuthProviderKind, OAuthProviderSettings, Secret, Settings};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::fake_provider::{
    apple_team_key, verify_apple_secret, FakeProvider, Forgery, Person, CLIENT_ID, CLIENT_SECRET,
    NATIVE_CLIENT_ID,
};
use crate::helpers::{
    access_token_of, assert_error, claims_of, cookie_value, refresh_cookie, spawn_app_with,
    strings_of, Backend, TestApp, PASSWORD,
};
use crate::smtp::{use_sink, SmtpSink};

const APP: &str = "https://app.example.com";

fn provider(kind: OAuthProviderKind, issuer: &str) -> OAuthProviderSettings {
    let github = kind == OAuthProviderKind::Github;
    let endpoint = |path: &str| {
        if github {
            format!("{issuer}{path}")
        } else {
            String::new()
        }
    };
    OAuthProviderSettings {
        kind,
        // Shown (buttons, mails) instead of the name, so a test can tell the two apart.
        display_name: if kind == OAuthProviderKind::Oidc {
            "Fake ID".into()
        } else {
            String::new()
        },
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        issuer: if github { String::new() } else { issuer.into() },
        authorization_url: endpoint("/authorize"),
        token_url: endpoint("/token"),
        api_url: endpoint(""),
        scopes: Vec::new(),
        native_client_ids: vec![NATIVE_CLIENT_ID.into()],
        team_id: String::new(),
        key_id: String::new(),
        private_key: Secret::default(),
    }
}

/// Settings with the provider at `issuer` as `fake` (OpenID Connect) and as `github`.
fn with_providers(issuer: &str) -> impl FnOnce(&mut Settings) {
    let issuer = issuer.to_string();
    move |settings| {
        settings.oauth.callback_base_url = "http://authd.test".into();
        settings.oauth.allowed_return_urls = vec![APP.into(), "http://localhost:5173/app".into()];
        let providers = &mut settings.oauth.providers;
        providers.insert("fake".into(), provider(OAuthProviderKind::Oidc, &issuer));
        providers.insert(
            "github".into(),
            provider(OAuthProviderKind::Github, &issuer),
        );
    }
}

async fn spawn(backend: Backend, fake: &FakeProvider) -> TestApp {
    spawn_app_with(backend, with_providers(&fake.issuer)).await
}

/// An app that takes the nonces native apps make (`oauth.native_nonces = "any"`).
async fn spawn_taking_app_nonces(backend: Backend, fake: &FakeProvider) -> TestApp {
    let issuer = fake.issuer.clone();
    spawn_app_with(backend, move |settings| {
        with_providers(&issuer)(settings);
        settings.oauth.native_nonces = NativeNonces::Any;
    })
    .await
}

/// A provider, a mail sink and an app using both, with `customize` on its settings.
async fn spawn_mailing(
    backend: Backend,
    customize: impl FnOnce(&mut Settings) + Send + 'static,
) -> (FakeProvider, SmtpSink, TestApp) {
    let fake = FakeProvider::start().await;
    let sink = SmtpSink::start();
    let (issuer, port) = (fake.issuer.clone(), sink.port);
    let app = spawn_app_with(backend, move |settings| {
        with_providers(&issuer)(settings);
        use_sink(settings, port);
        customize(settings);
    })
    .await;
    (fake, sink, app)
}

/// Where the browser lands after the callback: the return URL, the fragment's fields, and the
/// refresh cookie when one was set.
struct Landing {
    url: url::Url,
    fields: HashMap<String, String>,
    refresh_token: Option<String>,
    /// The `oauth_link` cookie's line, set with a link offer.
    link_cookie_line: Option<String>,
}

impl Landing {
    /// The `oauth_link` cookie's value, as this browser sends it back.
    fn link_cookie(&self) -> Option<String> {
        let line = self.link_cookie_line.as_deref()?;
        let value = line.strip_prefix("oauth_link=")?.split(';').next()?;
        Some(value.to_string()).filter(|value| !value.is_empty())
    }

    fn status(&self) -> &str {
        self.fields.get("status").map(String::as_str).unwrap_or("")
    }

    fn error(&self) -> &str {
        self.fields.get("error").map(String::as_str).unwrap_or("")
    }
}

/// The browser's trip up to the provider's answer: the flow cookie and the callback's query.
struct AtProvider {
    flow_cookie: String,
    callback_query: String,
}

impl TestApp {
    /// `GET /auth/oauth/{provider}/start`, then the provider (which consents at once).
    async fn to_provider(&self, provider: &str, return_to: Option<&str>) -> AtProvider {
        let mut path = format!("/auth/oauth/{provider}/start");
        if let Some(return_to) = return_to {
            path = format!("{path}?returnTo={}", urlencode(return_to));
        }
        let started = self.fetch(&path).await;
        assert_eq!(started.status().as_u16(), 302, "start redirects");
        let flow_cookie = cookie_value(started.headers(), "oauth_flow").expect("the flow cookie");
        let authorize = location(&started);
        assert!(
            authorize.contains("code_challenge_method=S256"),
            "{authorize}"
        );
        assert!(authorize.contains("state="), "{authorize}");
        let answered = self.client.get(&authorize).send().await.unwrap();
        assert_eq!(answered.status().as_u16(), 302, "the provider answers");
        let back = url::Url::parse(&location(&answered)).unwrap();
        assert_eq!(
            back.path(),
            format!("/auth/oauth/{provider}/callback"),
            "the registered callback"
        );
        AtProvider {
            flow_cookie,
            callback_query: back.query().unwrap_or("").to_string(),
        }
    }

    /// The callback as the browser makes it (with `cookie` as its `oauth_flow`).
    async fn callback(&self, provider: &str, query: &str, cookie: Option<&str>) -> Landing {
        let mut request = self
            .client
            .get(self.url(&format!("/auth/oauth/{provider}/callback?{query}")));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("oauth_flow={cookie}"));
        }
        landing(request.send().await.unwrap())
    }

    /// The whole round trip in one browser.
    async fn round_trip(&self, provider: &str, return_to: Option<&str>) -> Landing {
        let at = self.to_provider(provider, return_to).await;
        self.callback(provider, &at.callback_query, Some(&at.flow_cookie))
            .await
    }

    /// A round trip that signs in: the access token of the new session.
    async fn sign_in_through(&self, provider: &str) -> String {
        let landing = self.round_trip(provider, None).await;
        assert_eq!(landing.status(), "signed_in", "{:?}", landing.fields);
        let refresh = landing.refresh_token.expect("a refresh cookie");
        access_token_of(self.refresh_with_cookie(&refresh).await).await
    }

    /// `POST /auth/oauth/{provider}/nonce`: a nonce for a native app's ID token.
    async fn native_nonce(&self, provider: &str) -> String {
        let path = format!("/auth/oauth/{provider}/nonce");
        let response = self.post_json(&path, &json!({})).await;
        assert_eq!(response.status().as_u16(), 200, "a nonce");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["expiresIn"], 600);
        body["nonce"].as_str().expect("the nonce").to_string()
    }

    async fn exchange(&self, id_token: &str, nonce: &str) -> reqwest::Response {
        let body = json!({ "idToken": id_token, "nonce": nonce, "tokenTransport": "body" });
        self.post_json("/auth/oauth/fake/token", &body).await
    }

    /// `POST /me/identities` from the browser that landed with `offer`: takes its link offer.
    async fn accept_link(&self, token: &str, offer: &Landing) -> reqwest::Response {
        let cookie = offer.link_cookie();
        self.accept_link_with(token, &offer.fields["linkToken"], cookie.as_deref(), false)
            .await
    }

    /// `POST /me/identities` with `link_token`, `cookie` as the `oauth_link` cookie, and, as a
    /// page sends it, `Origin` when `from_page`.
    async fn accept_link_with(
        &self,
        token: &str,
        link_token: &str,
        cookie: Option<&str>,
        from_page: bool,
    ) -> reqwest::Response {
        let body = json!({ "linkToken": link_token });
        let mut request = self
            .client
            .post(self.url("/me/identities"))
            .bearer_auth(token)
            .json(&body);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("oauth_link={cookie}"));
        }
        if from_page {
            request = request.header("Origin", "http://localhost:3000");
        }
        request.send().await.unwrap()
    }

    async fn identities(&self, token: &str) -> Value {
        self.get_json("/me/identities", token).await
    }

    /// `POST /me/identities/{provider}/start` from the session of `token`: the flow cookie and
    /// the provider's authorization URL.
    async fn start_link(&self, token: &str, provider: &str) -> (String, String) {
        let path = format!("/me/identities/{provider}/start");
        let started = self
            .authed(Method::POST, &path, token, Some(json!({})))
            .await;
        assert_eq!(started.status().as_u16(), 200);
        let flow_cookie = cookie_value(started.headers(), "oauth_flow").expect("the flow cookie");
        let body: Value = started.json().await.unwrap();
        let authorize = body["authorizationUrl"].as_str().unwrap().to_string();
        (flow_cookie, authorize)
    }

    /// The rest of a link's round trip: the provider, then the callback in the same browser.
    async fn finish_link(
        &self,
        provider: &str,
        (flow_cookie, authorize): (String, String),
    ) -> Landing {
        let answered = self.client.get(&authorize).send().await.unwrap();
        let back = url::Url::parse(&location(&answered)).unwrap();
        self.callback(provider, back.query().unwrap(), Some(&flow_cookie))
            .await
    }
}

impl TestApp {
    /// Signs up (verification required) and follows the mailed link: the address.
    async fn account_verified_by_mail(&self, sink: &SmtpSink) -> String {
        let email = "owner@example.com".to_string();
        assert_eq!(self.signup(&email, PASSWORD).await.status().as_u16(), 201);
        let mails = sink.wait_for(1).await;
        let verified = self.verify_email(&mails[0].token()).await;
        assert_eq!(verified.status().as_u16(), 200);
        email
    }
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("Location")
        .expect("a Location")
        .to_str()
        .unwrap()
        .to_string()
}

fn landing(response: reqwest::Response) -> Landing {
    assert_eq!(response.status().as_u16(), 302, "the callback redirects");
    let cleared = crate::helpers::cookie_line(response.headers(), "oauth_flow").unwrap_or_default();
    assert!(
        cleared.contains("Max-Age=0"),
        "the flow cookie is cleared: {cleared}"
    );
    let url = url::Url::parse(&location(&response)).unwrap();
    let fields = url::form_urlencoded::parse(url.fragment().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    Landing {
        refresh_token: refresh_cookie(response.headers()),
        link_cookie_line: crate::helpers::cookie_line(response.headers(), "oauth_link"),
        url,
        fields,
    }
}

async fn a_new_identity_signs_up_and_then_signs_in_through_the_round_trip(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn(backend, &fake).await;
    let person = Person::new("grace@example.com");
    fake.signs_in(&person);

    let landing = app
        .round_trip("fake", Some("https://app.example.com/welcome"))
        .await;
    assert_eq!(landing.status(), "signed_in");
    assert_eq!(
        landing.url.as_str().split('#').next(),
        Some("https://app.example.com/welcome")
    );
    let refresh = landing
        .refresh_token
        .expect("a session: the refresh cookie");
    let token = access_token_of(app.refresh_with_cookie(&refresh).await).await;
    let claims = claims_of(&token);
    assert_eq!(claims["amr"], json!(["fed"]), "one factor, the provider");
    assert_eq!(claims["aal"], 1);
    let me = app.get_json("/me", &token).await;
    assert_eq!(me["email"], "grace@example.com");
    assert_eq!(me["emailVerified"], true, "as the provider said");
    assert_eq!(me["name"], "Ada Lovelace");
    let user_id = me["id"].clone();

    // The same identity again: the same account, no second one.
    let again = app.sign_in_through("fake").await;
    assert_eq!(app.get_json("/me", &again).await["id"], user_id);
    let identities = app.identities(&again).await;
    assert_eq!(strings_of(&identities, "provider"), ["fake"]);
    assert!(identities[0]["lastUsedAt"].is_string(), "{identities}");
    // It has no password: a password login gets the answer of a wrong one.
    let login = app.login("grace@example.com", PASSWORD).await;
    assert_error(login, 401, "invalid_credentials").await;

    let providers: Value = app
        .fetch("/auth/oauth/providers")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(strings_of(&providers, "name"), ["fake", "github"]);
}

async fn forged_or_wrong_id_tokens_open_no_session(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn(backend, &fake).await;
    fake.signs_in(&Person::new("mallory@example.com"));
    for forgery in [
        Forgery::WrongIssuer,
        Forgery::WrongAudience,
        Forgery::WrongNonce,
        Forgery::Expired,
        Forgery::AlgNone,
        Forgery::UnknownKid,
        Forgery::ForeignKey,
        Forgery::ClientSecretHmac,
        Forgery::IssuedInTheFuture,
    ] {
        fake.forge_next(forgery);
        let landing = app.round_trip("fake", None).await;
        assert_eq!(
            (landing.status(), landing.error()),
            ("error", "oauth_failed"),
            "{forgery:?}"
        );
        assert!(landing.refresh_token.is_none(), "{forgery:?}: no session");
    }
    let count = app
        .query_integers("SELECT count(*) FROM users WHERE email = 'mallory@example.com'")
        .await;
    assert_eq!(count, vec![vec![0]], "no account was made");
    // The provider itself is fine: the next honest round trip signs in.
    app.sign_in_through("fake").await;
}

async fn the_callback_needs_the_state_of_this_browser_once(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn(backend, &fake).await;
    fake.signs_in(&Person::new("eve@example.com"));

    // No state, or one authd never made.
    let landing = app.callback("fake", "code=abc", Some("x")).await;
    assert_eq!(landing.error(), "oauth_state_invalid");
    let landing = app
        .callback(
            "fake",
            "code=abc&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            None,
        )
        .await;
    assert_eq!(landing.error(), "oauth_state_invalid");
    assert_eq!(
        landing.url.as_str().split('#').next(),
        Some("https://app.example.com/"),
        "the default return URL"
    );

    // Another browser (no cookie, or another flow's) cannot finish this one: no login CSRF.
    let at = app.to_provider("fake", None).await;
    let theirs = app.to_provider("fake", None).await;
    let landing = app.callback("fake", &at.callback_query, None).await;
    assert_eq!(landing.error(), "oauth_state_invalid");
    let at = app.to_provider("fake", None).await;
    let landing = app
        .callback("fake", &at.callback_query, Some(&theirs.flow_cookie))
        .await;
    assert_eq!(landing.error(), "oauth_state_invalid");

    // The state is for the provider it went to.
    let at = app.to_provider("fake", None).await;
    let landing = app
        .callback("github", &at.callback_query, Some(&at.flow_cookie))
        .await;
    assert_eq!(landing.error(), "oauth_state_invalid");

    // A state is used once: replaying a good callback finds nothing. A HEAD of the callback
    // (a link checker's, a prefetcher's) or of the start acts on nothing: 405.
    let at = app.to_provider("fake", None).await;
    for (path, allow) in [
        (
            format!("/auth/oauth/fake/callback?{}", at.callback_query),
            "GET, POST",
        ),
        ("/auth/oauth/fake/start".to_string(), "GET"),
    ] {
        let head = app
            .client
            .head(app.url(&path))
            .header("Cookie", format!("oauth_flow={}", at.flow_cookie))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status().as_u16(), 405, "HEAD {path}");
        assert_eq!(head.headers()["allow"], allow);
        assert!(refresh_cookie(head.headers()).is_none());
    }
    let first = app
        .callback("fake", &at.callback_query, Some(&at.flow_cookie))
        .await;
    assert_eq!(first.status(), "signed_in");
    let replay = app
        .callback("fake", &at.callback_query, Some(&at.flow_cookie))
        .await;
    assert_eq!(replay.error(), "oauth_state_invalid");
    assert!(replay.refresh_token.is_none());

    // A user who says no at the provider.
    fake.deny_next();
    let landing = app.round_trip("fake", None).await;
    assert_eq!(landing.error(), "oauth_cancelled");
}

async fn a_code_is_redeemed_once(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn(backend, &fake).await;
    fake.signs_in(&Person::new("code@example.com"));
    let first = app.to_provider("fake", None).await;
    let landing = app
        .callback("fake", &first.callback_query, Some(&first.flow_cookie))
        .await;
    assert_eq!(landing.status(), "signed_in");
    // A fresh flow of this browser, handed the code that was already spent.
    let second = app.to_provider("fake", None).await;
    let spent_code = query_field(&first.callback_query, "code");
    let state = query_field(&second.callback_query, "state");
    let query = format!("code={spent_code}&state={state}");
    let landing = app
        .callback("fake", &query, Some(&second.flow_cookie))
        .await;
    assert_eq!(
        landing.error(),
        "oauth_failed",
        "the provider refuses a used code"
    );
    assert!(landing.refresh_token.is_none());
}

fn query_field(query: &str, name: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| urlencode(&v))
        .expect("the field")
}

async fn return_urls_stay_on_the_allowlist(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn(backend, &fake).await;
    for refused in [
        "https://evil.example.com/",
        "https://app.example.com.evil.com/",
        "//evil.example.com",
        "/relative",
        "javascript:alert(1)",
        "http://localhost:5173/",
        "https://user@app.example.com/",
    ] {
        let path = format!("/auth/oauth/fake/start?returnTo={}", urlencode(refused));
        let response = app.fetch(&path).await;
        let body = assert_error(response, 400, "validation_failed").await;
        assert_eq!(body["details"][0]["field"], "returnTo", "{refused}");
    }
    fake.signs_in(&Person::new("nav@example.com"));
    let landing = app
        .round_trip("fake", Some("http://localhost:5173/app/settings?tab=2"))
        .await;
    assert_eq!(landing.status(), "signed_in");
    assert_eq!(
        landing.url.as_str().split('#').next(),
        Some("http://localhost:5173/app/settings?tab=2")
    );
    let unknown = app.fetch("/auth/oauth/nobody/start").await;
    assert_error(unknown, 404, "not_found").await;
}

async fn an_address_with_an_account_is_never_taken_over(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn(backend, &fake).await;
    let owner = app.account().await;

    // The provider vouches for the owner's address without having verified it: refused.
    fake.signs_in(&Person::unverified(&owner.email));
    let landing = app.round_trip("fake", None).await;
    assert_eq!(landing.error(), "identity_email_unverified");
    assert!(landing.refresh_token.is_none());

    // Verified by the provider: still no session; a link is offered to the account's owner.
    let person = Person::new(&owner.email);
    fake.signs_in(&person);
    let landing = app.round_trip("fake", None).await;
    assert_eq!(landing.status(), "link_required");
    assert!(
        landing.refresh_token.is_none(),
        "no session before the owner proves itself"
    );
    assert_eq!(landing.fields["email"], owner.email);
    assert_eq!(landing.fields["provider"], "fake");
    // The offer is this browser's: HttpOnly, for `POST /me/identities` only.
    let line = landing
        .link_cookie_line
        .clone()
        .expect("the oauth_link cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/me/identities"] {
        assert!(line.contains(attribute), "{line}");
    }
    assert!(app
        .identities(&owner.access_token)
        .await
        .as_array()
        .unwrap()
        .is_empty());
    app.assert_login_works(&owner.email, PASSWORD).await;

    // Someone else, signed in, cannot take the offer, nor use it up.
    let other = app.account().await;
    let taken = app.accept_link(&other.access_token, &landing).await;
    assert_error(taken, 400, "validation_failed").await;

    // The offer, taken by the owner after signing in with the password.
    let linked = app.accept_link(&owner.access_token, &landing).await;
    assert_eq!(linked.status().as_u16(), 201);
    let cleared = crate::helpers::cookie_line(linked.headers(), "oauth_link").unwrap_or_default();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let again = app.accept_link(&owner.access_token, &landing).await;
    assert_error(again, 400, "validation_failed").await;
    // From now on the identity signs the owner in.
    let token = app.sign_in_through("fake").await;
    assert_eq!(
        app.get_json("/me", &token).await["id"],
        owner.user_id.to_string()
    );
    let kinds = app.event_kinds(&owner.access_token).await;
    assert!(kinds.contains(&"identity_linked".to_string()), "{kinds:?}");
}

async fn a_second_factor_still_applies(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn(backend, &fake).await;
    fake.signs_in(&Person::new("two-factors@example.com"));
    let token = app.sign_in_through("fake").await;
    let (secret, _) = app.enrol_totp(&token).await;

    let landing = app.round_trip("fake", None).await;
    assert_eq!(landing.status(), "mfa_required");
    assert!(
        landing.refresh_token.is_none(),
        "the provider alone opens no session"
    );
    assert!(landing.fields["methods"].contains("totp"));
    let body = json!({
        "mfaToken": landing.fields["mfaToken"],
        "code": crate::mfa::code(&secret, 1),
    });
    let verified = app.post_json("/auth/mfa/verify", &body).await;
    let claims = claims_of(&access_token_of(verified).await);
    assert_eq!(claims["amr"], json!(["otp", "fed", "mfa"]));
    assert_eq!(claims["aal"], 2);
}

/// A link offer made to a browser links only from that browser: someone who gets an offer for a
/// victim's address (a provider account claiming it) and plants it in the victim's page as a
/// crafted return URL links nothing, though the victim is signed in. Each offer gets a new key,
/// so a browser's newest offer is the one it can take. An app's offer (a token exchange no page
/// sent) needs no cookie but is taken only by a request no page sent (no `Origin`); a page's
/// exchange is bound to its browser like a round trip.
async fn a_link_offer_is_taken_only_where_it_was_made(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn_taking_app_nonces(backend, &fake).await;
    let victim = app.account().await;
    fake.signs_in(&Person::new(&victim.email));
    // The victim's browser holds an offer of its own, and so its own link key.
    let own = app.round_trip("fake", None).await;
    for cookie in [None, own.link_cookie()] {
        let planted = app.round_trip("fake", None).await;
        assert_eq!(planted.status(), "link_required");
        let refused = app
            .accept_link_with(
                &victim.access_token,
                &planted.fields["linkToken"],
                cookie.as_deref(),
                false,
            )
            .await;
        assert_error(refused, 400, "validation_failed").await;
        // Refused, the planted offer is used up: not even its own browser can take it now.
        let used = app.accept_link(&victim.access_token, &planted).await;
        assert_error(used, 400, "validation_failed").await;
    }
    let linked = app.identities(&victim.access_token).await;
    assert!(linked.as_array().unwrap().is_empty(), "{linked}");
    // A second round trip in the victim's browser replaces its key: the newest offer links, the
    // earlier one no longer can (an offer gets a new key however the request comes).
    let second = app.round_trip("fake", None).await;
    assert_ne!(second.link_cookie(), own.link_cookie());
    let earlier = app
        .accept_link_with(
            &victim.access_token,
            &own.fields["linkToken"],
            second.link_cookie().as_deref(),
            true,
        )
        .await;
    assert_error(earlier, 400, "validation_failed").await;
    let linked = app.accept_link(&victim.access_token, &second).await;
    assert_eq!(linked.status().as_u16(), 201);
    unlink(&app, &victim.access_token, "fake").await;

    // An app's offer: the body names the provider; planted in a page (whose requests carry
    // Origin), refused and used up; taken by the app as it is.
    let person = Person {
        subject: "native-subject".into(),
        ..Person::new(&victim.email)
    };
    let offer_to_app = |nonce: &'static str| {
        let token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, nonce);
        let app = &app;
        async move {
            let body: Value = app.exchange(&token, nonce).await.json().await.unwrap();
            assert_eq!(body["linkRequired"], true, "{body}");
            assert_eq!(body["provider"], "fake", "{body}");
            body["linkToken"].as_str().expect("an offer").to_string()
        }
    };
    let planted = offer_to_app("n").await;
    let from_page = app
        .accept_link_with(&victim.access_token, &planted, None, true)
        .await;
    assert_error(from_page, 400, "validation_failed").await;
    let offer = offer_to_app("m").await;
    let linked = app
        .accept_link_with(&victim.access_token, &offer, None, false)
        .await;
    assert_eq!(linked.status().as_u16(), 201);
    unlink(&app, &victim.access_token, "fake").await;

    // A page's exchange (a sign-in button's ID token): bound to that browser by the cookie.
    let token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, "p");
    let body = json!({ "idToken": token, "nonce": "p" });
    let answered = app
        .client
        .post(app.url("/auth/oauth/fake/token"))
        .header("Origin", "http://localhost:3000")
        .json(&body)
        .send()
        .await
        .unwrap();
    let cookie = cookie_value(answered.headers(), "oauth_link").expect("the page's link key");
    let offer: Value = answered.json().await.unwrap();
    let offer = offer["linkToken"].as_str().expect("an offer");
    let linked = app
        .accept_link_with(&victim.access_token, offer, Some(&cookie), true)
        .await;
    assert_eq!(linked.status().as_u16(), 201);
}

async fn unlink(app: &TestApp, token: &str, provider: &str) {
    let path = format!("/me/identities/{provider}");
    let unlinked = app.authed(Method::DELETE, &path, token, None).await;
    assert_eq!(unlinked.status().as_u16(), 204);
}

/// The ID token's own checks, with nonces the app makes (`oauth.native_nonces = "any"`); the
/// issued ones are the next test's.
async fn native_apps_exchange_an_id_token_once(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn_taking_app_nonces(backend, &fake).await;
    let person = Person::new("ios@example.com");
    let nonce = "a-nonce-the-app-made";
    let hashed: String = Sha256::digest(nonce.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    // The token holds the nonce's SHA-256 (as Sign in with Apple's SDK does).
    let id_token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, &hashed);
    let signed_in = app.exchange(&id_token, nonce).await;
    assert_eq!(signed_in.status().as_u16(), 200);
    let body: Value = signed_in.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ios@example.com");
    assert!(body["refreshToken"].is_string(), "body transport: {body}");
    assert_eq!(
        claims_of(body["accessToken"].as_str().unwrap())["amr"],
        json!(["fed"])
    );

    // Each token once, however its signature is spelt: the last base64url character of an
    // RS256 signature carries four unused bits, so 16 spellings decode to the same signature.
    assert_error(app.exchange(&id_token, nonce).await, 401, "oauth_failed").await;
    let respelt = {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = *id_token.as_bytes().last().unwrap();
        let index = ALPHABET.iter().position(|c| *c == last).unwrap();
        let mut respelt = id_token[..id_token.len() - 1].to_string();
        respelt.push(char::from(ALPHABET[index ^ 1]));
        respelt
    };
    assert_ne!(respelt, id_token);
    assert_error(app.exchange(&respelt, nonce).await, 401, "oauth_failed").await;
    // A subject longer than the 255 characters an identity keeps: refused, not a server error.
    let long = Person {
        subject: "x".repeat(300),
        ..Person::new("long-subject@example.com")
    };
    let token = fake.id_token_for_app(&long, NATIVE_CLIENT_ID, nonce);
    assert_error(app.exchange(&token, nonce).await, 401, "oauth_failed").await;
    // A NUL in the subject or the address (PostgreSQL cannot store one): refused on both
    // backends alike, not a 500.
    let nul_subject = Person {
        subject: "x\0y".into(),
        ..Person::new("nul-subject@example.com")
    };
    let nul_address = Person {
        email: Some("nul\0@example.com".into()),
        ..Person::new("nul-address@example.com")
    };
    for person in [nul_subject, nul_address] {
        let token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, nonce);
        assert_error(app.exchange(&token, nonce).await, 401, "oauth_failed").await;
    }
    // A token that would be remembered as spent for thirty years.
    fake.forge_next(Forgery::LivesForYears);
    let token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, nonce);
    assert_error(app.exchange(&token, nonce).await, 401, "oauth_failed").await;
    // The wrong nonce, an audience authd does not serve, a forged token.
    let fresh = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, nonce);
    assert_error(
        app.exchange(&fresh, "another-nonce").await,
        401,
        "oauth_failed",
    )
    .await;
    let elsewhere = fake.id_token_for_app(&person, "another-app", nonce);
    assert_error(app.exchange(&elsewhere, nonce).await, 401, "oauth_failed").await;
    fake.forge_next(Forgery::AlgNone);
    let unsigned = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, nonce);
    assert_error(app.exchange(&unsigned, nonce).await, 401, "oauth_failed").await;
    // The web client's audience is accepted too, with the raw nonce.
    let web = fake.id_token_for_app(&person, CLIENT_ID, nonce);
    assert_eq!(app.exchange(&web, nonce).await.status().as_u16(), 200);
    // Missing fields are named; GitHub issues no ID tokens.
    let missing = app
        .post_json("/auth/oauth/fake/token", &json!({ "nonce": nonce }))
        .await;
    let body = assert_error(missing, 400, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "idToken");
    let github = json!({ "idToken": web, "nonce": nonce });
    assert_error(
        app.post_json("/auth/oauth/github/token", &github).await,
        400,
        "validation_failed",
    )
    .await;
}

/// By default a native app's ID token must carry a nonce authd issued for that provider, once:
/// a token whose nonce authd never gave out (another app's, one made up), or one already used,
/// opens nothing, whatever the token.
async fn native_apps_use_a_nonce_authd_issued_once(backend: Backend) {
    let fake = FakeProvider::start().await;
    let issuer = fake.issuer.clone();
    let app = spawn_app_with(backend, move |settings| {
        with_providers(&issuer)(settings);
        let other = provider(OAuthProviderKind::Oidc, &issuer);
        settings.oauth.providers.insert("other".into(), other);
    })
    .await;
    let person = Person::new("android@example.com");
    let issued = app.native_nonce("fake").await;

    // Google's SDK puts the nonce in the token as it is; Apple's apps usually put its SHA-256.
    let token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, &issued);
    assert_eq!(app.exchange(&token, &issued).await.status().as_u16(), 200);
    let apple = app.native_nonce("fake").await;
    let hashed: String = Sha256::digest(apple.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, &hashed);
    assert_eq!(app.exchange(&token, &apple).await.status().as_u16(), 200);

    // Used once: a fresh token with the same nonce is refused.
    let again = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, &issued);
    assert_error(app.exchange(&again, &issued).await, 401, "oauth_failed").await;
    // A nonce the app made up, or one in the shape of authd's that it never gave out.
    let never_given = authd::domain::opaque_token::OpaqueToken::generate();
    for made_up in ["a-nonce-the-app-made", never_given.as_str()] {
        let token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, made_up);
        assert_error(app.exchange(&token, made_up).await, 401, "oauth_failed").await;
    }
    // A nonce given out for another provider.
    let elsewhere = app.native_nonce("other").await;
    let token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, &elsewhere);
    assert_error(app.exchange(&token, &elsewhere).await, 401, "oauth_failed").await;
    // A token refused for itself leaves its nonce to the app's next try (the nonce is used up
    // by the token that checks out).
    let kept = app.native_nonce("fake").await;
    let foreign = fake.id_token_for_app(&person, "another-app", &kept);
    assert_error(app.exchange(&foreign, &kept).await, 401, "oauth_failed").await;
    let token = fake.id_token_for_app(&person, NATIVE_CLIENT_ID, &kept);
    assert_eq!(app.exchange(&token, &kept).await.status().as_u16(), 200);

    // No nonces where there are no ID tokens, nor for a provider that is not configured.
    let github = app.post_json("/auth/oauth/github/nonce", &json!({})).await;
    assert_error(github, 400, "validation_failed").await;
    let nowhere = app.post_json("/auth/oauth/nowhere/nonce", &json!({})).await;
    assert_error(nowhere, 404, "not_found").await;
}

async fn identities_are_linked_while_signed_in_and_never_all_unlinked(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn(backend, &fake).await;
    let person = Person::new("links@example.com");
    fake.signs_in(&person);
    let token = app.sign_in_through("fake").await;

    // Its only way in: it stays.
    let last = app.delete("/me/identities/fake", &token).await;
    assert_error(last, 409, "last_sign_in_method").await;

    // Link GitHub from the signed-in session: a round trip that ends in `linked`.
    let started = app.start_link(&token, "github").await;
    let landing = app.finish_link("github", started).await;
    assert_eq!(landing.status(), "linked", "{:?}", landing.fields);
    assert!(
        landing.refresh_token.is_none(),
        "linking opens no new session"
    );
    let identities = app.identities(&token).await;
    assert_eq!(strings_of(&identities, "provider"), ["fake", "github"]);

    // GitHub now signs the same account in.
    let through_github = app.sign_in_through("github").await;
    assert_eq!(
        app.get_json("/me", &through_github).await["email"],
        "links@example.com"
    );

    // One may go; then the other is the last way in.
    assert_eq!(
        app.delete("/me/identities/fake", &token)
            .await
            .status()
            .as_u16(),
        204
    );
    assert_error(
        app.delete("/me/identities/fake", &token).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.delete("/me/identities/github", &token).await,
        409,
        "last_sign_in_method",
    )
    .await;
    let kinds = app.event_kinds(&token).await;
    assert!(
        kinds.contains(&"identity_unlinked".to_string()),
        "{kinds:?}"
    );
}

/// A link started by a session that then ended (the owner signed out everywhere, reset the
/// password, or the account was deleted) links nothing when the browser comes back.
async fn a_link_ends_with_the_session_that_started_it(backend: Backend) {
    let (fake, sink, app) = spawn_mailing(backend, |_| {}).await;
    let owner = app.account().await;
    fake.signs_in(&Person::new("someone-else@example.com"));
    let started = app.start_link(&owner.access_token, "fake").await;
    let fresh = access_token_of(app.login(&owner.email, PASSWORD).await).await;
    let ended = app.post_bearer("/auth/logout-all", &fresh).await;
    assert_eq!(ended.status().as_u16(), 200);
    let landing = app.finish_link("fake", started).await;
    assert_eq!(
        landing.error(),
        "oauth_state_invalid",
        "{:?}",
        landing.fields
    );
    let token = access_token_of(app.login(&owner.email, PASSWORD).await).await;
    assert_eq!(
        app.identities(&token).await,
        json!([]),
        "nothing was linked"
    );

    // The same round trip from a session that lives links, and the owner is told.
    let started = app.start_link(&token, "fake").await;
    let landing = app.finish_link("fake", started).await;
    assert_eq!(landing.status(), "linked", "{:?}", landing.fields);
    // The sign-up's verification mail, then the notice.
    let mails = sink.wait_for(2).await;
    let notice = mails
        .iter()
        .find(|m| m.subject.contains("new way to sign in"))
        .expect("the owner is told of the new way in");
    assert_eq!(notice.to, owner.email);
    assert!(
        notice.text.contains("Signing in with Fake ID"),
        "{}",
        notice.text
    );
}

/// Account pre-hijacking through a provider that did not verify the address: the account it
/// made (no password, the identity its only way in) is the mailbox owner's once they reset the
/// password, and the identity is gone.
async fn an_identity_made_before_the_address_was_proven_goes_with_the_owners_reset(
    backend: Backend,
) {
    let (fake, sink, app) = spawn_mailing(backend, |_| {}).await;
    let address = "prehijacked@example.com";
    fake.signs_in(&Person::unverified(address));
    let landing = app.round_trip("fake", None).await;
    assert_eq!(landing.status(), "signed_in", "{:?}", landing.fields);

    // The verification mail of the sign-up names the provider and tells a reader who did not
    // sign in with it not to confirm; then the owner's reset.
    let mail = sink.wait_for(1).await.remove(0);
    let subject = &mail.subject;
    assert!(subject.contains("if this account is yours"), "{subject}");
    for said in ["by signing in with Fake ID", "do not open the link"] {
        assert!(mail.text.contains(said), "{said}: {}", mail.text);
        assert!(mail.html.contains(said), "{said}: {}", mail.html);
    }
    app.forgot_password(address).await;
    let mails = sink.wait_for(2).await;
    let reset = mails.iter().find(|m| m.subject.contains("Reset")).unwrap();
    let response = app
        .reset_password(&reset.token(), "a new passphrase, the owner's")
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let token = access_token_of(app.login(address, "a new passphrase, the owner's").await).await;
    assert_eq!(app.identities(&token).await, json!([]));
    // The squatter's identity no longer opens the account.
    let again = app.round_trip("fake", None).await;
    assert_eq!(
        again.error(),
        "identity_email_unverified",
        "{:?}",
        again.fields
    );
}

async fn github_accounts_come_from_the_verified_primary_address(backend: Backend) {
    let fake = FakeProvider::start().await;
    let app = spawn(backend, &fake).await;
    fake.signs_in(&Person::new("octo@example.com"));
    let token = app.sign_in_through("github").await;
    let me = app.get_json("/me", &token).await;
    assert_eq!(
        me["email"], "octo@example.com",
        "the primary, not the other verified one"
    );
    assert_eq!(me["emailVerified"], true);
}

async fn apple_gets_a_signed_client_secret_and_posts_its_answer(backend: Backend) {
    let fake = FakeProvider::start().await;
    let (pem, public_jwk) = apple_team_key();
    let issuer = fake.issuer.clone();
    let app = spawn_app_with(backend, move |settings| {
        settings.oauth.callback_base_url = "http://authd.test".into();
        settings.oauth.allowed_return_urls = vec![APP.into()];
        let mut apple = provider(OAuthProviderKind::Apple, &issuer);
        apple.client_secret = Secret::default();
        apple.team_id = "TEAM123456".into();
        apple.key_id = "KEY1234567".into();
        apple.private_key = Secret::new(pem);
        settings.oauth.providers.insert("apple".into(), apple);
    })
    .await;
    fake.signs_in(&Person::new("apple@example.com"));
    let at = app.to_provider("apple", None).await;
    let form = format!("{}&user=%7B%7D", at.callback_query);
    let posted = app
        .client
        .post(app.url("/auth/oauth/apple/callback"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", "https://appleid.apple.com")
        .header("Cookie", format!("oauth_flow={}", at.flow_cookie))
        .body(form)
        .send()
        .await
        .unwrap();
    let signed_in = landing(posted);
    assert_eq!(signed_in.status(), "signed_in", "{:?}", signed_in.fields);
    // A post the browser marks cross-site but sends without Origin (no browser does; a tool
    // might): still the callback's answer, a redirect, not the API's JSON refusal.
    let bare = app
        .client
        .post(app.url("/auth/oauth/apple/callback"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Sec-Fetch-Site", "cross-site")
        .body(format!("{}&user=%7B%7D", at.callback_query))
        .send()
        .await
        .unwrap();
    assert_eq!(landing(bare).error(), "oauth_state_invalid");
    let secret = fake.client_secrets().pop().expect("authd authenticated");
    let claims = verify_apple_secret(&secret, &public_jwk, &fake.issuer);
    assert_eq!(claims["sub"], CLIENT_ID);
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 300);
}

async fn a_provider_that_is_down_is_a_clean_error(backend: Backend) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let app = spawn_app_with(backend, move |settings| {
        settings.oauth.allowed_return_urls = vec![APP.into()];
        settings.oauth.provider_timeout_ms = 2000;
        settings
            .oauth
            .providers
            .insert("down".into(), provider(OAuthProviderKind::Oidc, &issuer));
    })
    .await;
    // A navigation: the browser is sent back with the error, not shown a JSON page.
    let started = landing(app.fetch("/auth/oauth/down/start").await);
    assert_eq!(started.error(), "provider_unavailable");
    assert_eq!(
        started.url.as_str().split('#').next(),
        Some("https://app.example.com/")
    );
    let token = json!({ "idToken": "a.b.c", "nonce": "n" });
    let exchanged = app.post_json("/auth/oauth/down/token", &token).await;
    assert!(
        matches!(exchanged.status().as_u16(), 401 | 502),
        "{}",
        exchanged.status()
    );
}

async fn closed_signup_and_locked_accounts_open_no_session(backend: Backend) {
    let fake = FakeProvider::start().await;
    let issuer = fake.issuer.clone();
    let app = spawn_app_with(backend, move |settings| {
        with_providers(&issuer)(settings);
        settings.oauth.allow_signup = false;
    })
    .await;
    fake.signs_in(&Person::new("newcomer@example.com"));
    let landing = app.round_trip("fake", None).await;
    assert_eq!(landing.error(), "signup_disabled");

    // A linked account that an admin locks.
    let admin = app.admin().await;
    let owner = app.account().await;
    fake.signs_in(&Person::new(&owner.email));
    let offer = app.round_trip("fake", None).await;
    let linked = app.accept_link(&owner.access_token, &offer).await;
    assert_eq!(linked.status().as_u16(), 201);
    app.lock_user(&admin.access_token, owner.user_id).await;
    let landing = app.round_trip("fake", None).await;
    assert_eq!(landing.error(), "account_locked");
    assert!(landing.refresh_token.is_none());
}

async fn with_verification_required_provider_sign_ins_hide_taken_addresses(backend: Backend) {
    let (fake, sink, app) = spawn_mailing(backend, |settings| {
        settings.auth.require_email_verification = true;
    })
    .await;
    let owner = app.account_verified_by_mail(&sink).await;

    // A new address the provider did not verify: an account, a verification mail, no session.
    fake.signs_in(&Person::unverified("fresh@example.com"));
    let fresh = app.round_trip("fake", None).await;
    assert_eq!(fresh.status(), "verification_sent");
    assert!(fresh.refresh_token.is_none());
    // The owner's address, unverified at the provider: the very same answer; the owner is told.
    fake.signs_in(&Person::unverified(&owner));
    let taken = app.round_trip("fake", None).await;
    assert_eq!(taken.fields, fresh.fields, "nothing tells the two apart");
    assert!(taken.refresh_token.is_none());
    let mails = sink.wait_for(3).await;
    assert!(mails
        .iter()
        .any(|m| m.to.contains("fresh@example.com") && m.subject.contains("Confirm")));
    assert!(mails
        .iter()
        .any(|m| m.to.contains(&owner) && m.subject.contains("tried to use your address")));
    app.assert_login_works(&owner, PASSWORD).await;
}

crate::backend_tests!(
    with_verification_required_provider_sign_ins_hide_taken_addresses,
    a_new_identity_signs_up_and_then_signs_in_through_the_round_trip,
    forged_or_wrong_id_tokens_open_no_session,
    the_callback_needs_the_state_of_this_browser_once,
    a_code_is_redeemed_once,
    return_urls_stay_on_the_allowlist,
    an_address_with_an_account_is_never_taken_over,
    a_link_offer_is_taken_only_where_it_was_made,
    a_second_factor_still_applies,
    native_apps_exchange_an_id_token_once,
    native_apps_use_a_nonce_authd_issued_once,
    identities_are_linked_while_signed_in_and_never_all_unlinked,
    a_link_ends_with_the_session_that_started_it,
    an_identity_made_before_the_address_was_proven_goes_with_the_owners_reset,
    github_accounts_come_from_the_verified_primary_address,
    apple_gets_a_signed_client_secret_and_posts_its_answer,
    a_provider_that_is_down_is_a_clean_error,
    closed_signup_and_locked_accounts_open_no_session,
);
