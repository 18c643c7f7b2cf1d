//! Putting mail in the outbox: emailed one-time tokens (the token and its mail in one
//! transaction) and notices. The mailer actor is woken after each write.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use uuid::Uuid;

use crate::actors::mailer::{message_id_domain, Mailer};
use crate::actors::Wake;
use crate::config::{AppSettings, Settings};
use crate::domain::messages::{self, MessageKind};
use crate::domain::one_time::TokenKind;
use crate::domain::opaque_token::OpaqueToken;
use crate::error::AppError;
use crate::store::{ConsumedToken, NewOneTimeToken, OutboxEmail, Store};

/// How long each kind of emailed token lives.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    /// Also the confirmation of a new address: the same proof of a mailbox.
    pub email_verification: Duration,
    pub password_reset: Duration,
    pub invitation: Duration,
}

impl TokenLifetimes {
    fn of(&self, kind: TokenKind) -> Duration {
        match kind {
            TokenKind::EmailVerification | TokenKind::EmailChange => self.email_verification,
            TokenKind::PasswordReset => self.password_reset,
            TokenKind::Invitation => self.invitation,
        }
    }
}

/// A token exchanged at `POST /auth/tokens/validate` lives this long in its cookie.
pub const FOLLOW_UP_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
    mailer: Addr<Mailer>,
    app: Arc<AppSettings>,
    app_name: String,
    message_domain: String,
    lifetimes: TokenLifetimes,
}

fn message_kind(kind: TokenKind) -> MessageKind {
    match kind {
        TokenKind::EmailVerification => MessageKind::VerifyEmail,
        TokenKind::PasswordReset => MessageKind::ResetPassword,
        TokenKind::Invitation => MessageKind::Invitation,
        TokenKind::EmailChange => MessageKind::ConfirmEmailChange,
    }
}

impl Outbox {
    /// The outbox as the settings shape it: links to the app's pages, the names in the mail,
    /// each kind's lifetime.
    pub fn new(store: Arc<dyn Store>, mailer: Addr<Mailer>, settings: &Settings) -> Self {
        let auth = &settings.auth;
        Outbox {
            store,
            mailer,
            app: Arc::new(settings.app.clone()),
            app_name: auth.app_name.clone(),
            message_domain: message_id_domain(&settings.mail),
            lifetimes: TokenLifetimes {
                email_verification: Duration::from_secs(auth.email_verification_ttl_seconds),
                password_reset: Duration::from_secs(auth.password_reset_ttl_seconds),
                invitation: Duration::from_secs(auth.invitation_ttl_seconds),
            },
        }
    }

    fn page(&self, kind: TokenKind) -> &str {
        match kind {
            TokenKind::EmailVerification => &self.app.verify_email_path,
            TokenKind::PasswordReset => &self.app.reset_password_path,
            TokenKind::Invitation => &self.app.invitation_path,
            TokenKind::EmailChange => &self.app.email_change_path,
        }
    }

    fn outbox_email(&self, to: &str, message: messages::Message) -> OutboxEmail {
        let id = Uuid::new_v4();
        OutboxEmail {
            id,
            message_id: format!("<{}@{}>", id.simple(), self.message_domain),
            recipient: to.to_string(),
            subject: message.subject,
            text_body: message.text,
            html_body: message.html,
        }
    }

    /// Stores a token from [`Outbox::prepare_token`] and its mail, atomically, then wakes the
    /// mailer.
    pub async fn send_token(
        &self,
        prepared: (NewOneTimeToken, OutboxEmail),
    ) -> Result<(), AppError> {
        let (token, email) = prepared;
        self.store
            .create_one_time_token(&token, Some(&email))
            .await?;
        self.wake();
        Ok(())
    }

    /// A new token of `kind` and the mail carrying its link, to store with
    /// [`Outbox::send_token`] or in a transaction of the caller's (then [`Outbox::wake`]).
    pub fn prepare_token(
        &self,
        kind: TokenKind,
        user_id: Option<Uuid>,
        to: &str,
        name: Option<&str>,
        metadata: &serde_json::Value,
    ) -> (NewOneTimeToken, OutboxEmail) {
        let mail = (message_kind(kind), name, "");
        self.prepare_token_mail(kind, user_id, to, mail, metadata)
    }

    /// [`Outbox::prepare_token`] with the mail's kind, greeting and `about` given.
    fn prepare_token_mail(
        &self,
        kind: TokenKind,
        user_id: Option<Uuid>,
        to: &str,
        (message, name, about): (MessageKind, Option<&str>, &str),
        metadata: &serde_json::Value,
    ) -> (NewOneTimeToken, OutboxEmail) {
        let token = OpaqueToken::generate();
        let lifetime = self.lifetimes.of(kind);
        let link = self.app.link(self.page(kind), token.as_str());
        let values = messages::MessageValues {
            app_name: &self.app_name,
            name,
            link: &link,
            expires_in: lifetime,
            code: "",
            about,
        };
        let email = self.outbox_email(to, messages::render_with(message, &values));
        let stored = NewOneTimeToken {
            hash: token.hash(),
            kind,
            user_id,
            email: to.to_string(),
            metadata: metadata.to_string(),
            ttl_seconds: lifetime.as_secs(),
            follow_up: false,
        };
        (stored, email)
    }

    /// The verification token of a new account `user_id` at `to`, and its mail: to write with
    /// the account, in the same transaction. The mail greets no name: the address is not proven
    /// (see `User::name_for_mail`). `provider`: the name of the provider whose sign-in made the
    /// account without verifying the address; the mail then tells its reader not to confirm
    /// unless that was them (confirming keeps that sign-in as a way into the account, and a
    /// reset no longer removes it).
    pub fn prepare_verification(
        &self,
        user_id: Uuid,
        to: &str,
        provider: Option<&str>,
    ) -> (NewOneTimeToken, OutboxEmail) {
        let metadata = serde_json::json!({});
        let kind = TokenKind::EmailVerification;
        let mail = match provider {
            Some(provider) => (MessageKind::VerifyEmailFromProvider, None, provider),
            None => (MessageKind::VerifyEmail, None, ""),
        };
        self.prepare_token_mail(kind, Some(user_id), to, mail, &metadata)
    }

    /// Tells the mailer that mail was queued.
    pub fn wake(&self) {
        self.mailer.do_send(Wake);
    }

    /// A notice without a token (account exists, password changed), linking to the page where a
    /// password reset starts.
    pub async fn send_notice(
        &self,
        kind: MessageKind,
        to: &str,
        name: Option<&str>,
    ) -> Result<(), AppError> {
        self.send_notice_about(kind, to, name, "").await
    }

    /// [`Outbox::send_notice`] about something: an address change's new address, a linked
    /// provider's name.
    pub async fn send_notice_about(
        &self,
        kind: MessageKind,
        to: &str,
        name: Option<&str>,
        about: &str,
    ) -> Result<(), AppError> {
        let link = format!(
            "{}{}",
            self.app.frontend_url.trim_end_matches('/'),
            self.app.reset_password_path
        );
        let message = messages::render_with(
            kind,
            &messages::MessageValues {
                app_name: &self.app_name,
                name,
                link: &link,
                expires_in: Duration::ZERO,
                code: "",
                about,
            },
        );
        self.store
            .enqueue_email(&self.outbox_email(to, message))
            .await?;
        self.wake();
        Ok(())
    }

    /// The mail of a passwordless sign-in: a link to the sign-in page with `token`, and `code`.
    pub fn email_login(
        &self,
        to: &str,
        name: Option<&str>,
        token: &OpaqueToken,
        code: &str,
        lifetime: Duration,
    ) -> OutboxEmail {
        let link = self.app.link(&self.app.email_login_path, token.as_str());
        let message = messages::render_with(
            MessageKind::EmailLogin,
            &messages::MessageValues {
                app_name: &self.app_name,
                name,
                link: &link,
                expires_in: lifetime,
                code,
                about: "",
            },
        );
        self.outbox_email(to, message)
    }

    /// Re-issues a consumed emailed token as a short-lived follow-up token (no mail): what the
    /// `one_time_token` cookie carries after `POST /auth/tokens/validate`. It lives an hour at
    /// most, and never past the link it came from: opening a link does not lengthen its life.
    pub async fn follow_up(&self, consumed: &ConsumedToken) -> Result<OpaqueToken, AppError> {
        let left = (consumed.expires_at - chrono::Utc::now()).num_seconds();
        let ttl_seconds = u64::try_from(left)
            .unwrap_or(0)
            .clamp(1, FOLLOW_UP_LIFETIME.as_secs());
        let token = OpaqueToken::generate();
        self.store
            .create_one_time_token(
                &NewOneTimeToken {
                    hash: token.hash(),
                    kind: consumed.kind,
                    user_id: consumed.user_id,
                    email: consumed.email.clone(),
                    metadata: consumed.metadata.clone(),
                    ttl_seconds,
                    follow_up: true,
                },
                None,
            )
            .await?;
        Ok(token)
    }
}
