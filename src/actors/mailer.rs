//! The mailer actor: drains the `email_outbox` table. Mail is written there in the same
//! transaction as the token it carries, so a crash or an SMTP outage never loses it; the mailer
//! claims due rows for a lease (so several nodes never send the same row at once), sends them, and
//! records the outcome: sent, retry later (exponential backoff with jitter), or dead after
//! `mail.max_attempts`. Delivery is at least once, under a stable Message-ID.
//!
//! With no SMTP host configured, mail is written to `mail.file_dir` as `.eml` files instead, and a
//! line (without the body, which carries a token) goes to the log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};

use super::{Flush, Wake};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rand::Rng;

use crate::config::{MailSettings, SmtpTls};
use crate::store::{ClaimedEmail, DeliveryOutcome, OutboxEmail, Store};

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

pub struct Mailer {
    store: Arc<dyn Store>,
    transport: Arc<Transport>,
    from: Mailbox,
    settings: MailSettings,
    draining: bool,
    /// A wake-up arrived during a drain: drain again right after.
    again: bool,
    /// Held while a batch is sent, so `Flush` can wait for it.
    batch: Arc<tokio::sync::Mutex<()>>,
}

fn smtp_transport(settings: &MailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let host = settings.smtp_host.as_str();
    let builder = match settings.smtp_tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        SmtpTls::Starttls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(|e| e.to_string())?
        }
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| e.to_string())?
        }
    };
    let mut builder = builder
        .port(settings.smtp_port)
        .timeout(Some(Duration::from_secs(settings.send_timeout_seconds)));
    if !settings.smtp_username.is_empty() {
        builder = builder.credentials(Credentials::new(
            settings.smtp_username.clone(),
            settings.smtp_password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// The domain part of the sender, for Message-IDs.
pub fn message_id_domain(settings: &MailSettings) -> String {
    settings
        .from
        .parse::<Mailbox>()
        .map(|m| m.email.domain().to_string())
        .unwrap_or_else(|_| "authd.invalid".into())
}

impl Mailer {
    pub fn new(store: Arc<dyn Store>, settings: MailSettings) -> Result<Self, String> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("mail.from: {e}"))?;
        let transport = if settings.smtp_host.trim().is_empty() {
            // Created once at start; each mail then only writes its file.
            std::fs::create_dir_all(&settings.file_dir)
                .map_err(|e| format!("mail.file_dir: cannot create {}: {e}", settings.file_dir))?;
            Transport::Files(PathBuf::from(&settings.file_dir))
        } else {
            Transport::Smtp(smtp_transport(&settings).map_err(|e| format!("mail.smtp_host: {e}"))?)
        };
        Ok(Mailer {
            store,
            transport: Arc::new(transport),
            from,
            settings,
            draining: false,
            again: false,
            batch: Arc::default(),
        })
    }

    pub fn describe(settings: &MailSettings) -> String {
        if settings.smtp_host.trim().is_empty() {
            format!("files in {} (no SMTP configured)", settings.file_dir)
        } else {
            format!(
                "smtp {}:{} ({:?})",
                settings.smtp_host, settings.smtp_port, settings.smtp_tls
            )
        }
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            self.again = true;
            return;
        }
        self.draining = true;
        let store = self.store.clone();
        let transport = self.transport.clone();
        let from = self.from.clone();
        let settings = self.settings.clone();
        let batch = self.batch.clone();
        let work = async move {
            let _sending = batch.lock().await;
            drain_once(store.as_ref(), &transport, &from, &settings).await
        };
        ctx.spawn(work.into_actor(self).map(|full_batch, act, ctx| {
            act.draining = false;
            if full_batch || std::mem::take(&mut act.again) {
                ctx.notify(Wake);
            }
        }));
    }
}

/// Sends one batch; answers whether the batch was full (more may be due).
async fn drain_once(
    store: &dyn Store,
    transport: &Transport,
    from: &Mailbox,
    settings: &MailSettings,
) -> bool {
    let claimed = match store
        .claim_due_emails(settings.batch_size, settings.lease_seconds)
        .await
    {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "mailer: cannot read the outbox; retrying on the next tick");
            return false;
        }
    };
    let full = claimed.len() as u32 == settings.batch_size;
    for mail in claimed {
        let outcome = deliver(transport, from, &mail, settings).await;
        match &outcome {
            DeliveryOutcome::Sent => {
                crate::metrics::mail_attempt("sent");
                tracing::info!(message_id = %mail.email.message_id, "mail sent")
            }
            DeliveryOutcome::Retry {
                after_seconds,
                error,
            } => {
                crate::metrics::mail_attempt("retry");
                tracing::warn!(message_id = %mail.email.message_id, attempt = mail.attempts, after_seconds, %error, "mail failed; will retry")
            }
            DeliveryOutcome::Dead { error } => {
                crate::metrics::mail_attempt("dead");
                tracing::error!(message_id = %mail.email.message_id, attempts = mail.attempts, %error, "mail dead-lettered")
            }
        }
        if let Err(e) = store.record_delivery(mail.email.id, &outcome).await {
            // The lease runs out and the mail is tried again: at least once, never lost.
            tracing::warn!(error = %e, message_id = %mail.email.message_id, "mailer: cannot record a delivery");
        }
    }
    full
}

fn build(from: &Mailbox, email: &OutboxEmail) -> Result<lettre::Message, String> {
    let to: Mailbox = email
        .recipient
        .parse()
        .map_err(|e| format!("recipient: {e}"))?;
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(email.message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(
            email.text_body.clone(),
            email.html_body.clone(),
        ))
        .map_err(|e| e.to_string())
}

async fn deliver(
    transport: &Transport,
    from: &Mailbox,
    mail: &ClaimedEmail,
    settings: &MailSettings,
) -> DeliveryOutcome {
    let message = match build(from, &mail.email) {
        Ok(message) => message,
        // A mail that cannot be built never will be.
        Err(error) => return DeliveryOutcome::Dead { error },
    };
    let result = match transport {
        Transport::Smtp(smtp) => smtp
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Transport::Files(dir) => write_file(dir, &mail.email, &message.formatted()).await,
    };
    match result {
        Ok(()) => DeliveryOutcome::Sent,
        Err(error) => {
            let retry = settings.retry_policy();
            let after = retry.retry_after(mail.attempts, rand::thread_rng().gen());
            DeliveryOutcome::failed(error, after)
        }
    }
}

/// Writes `<dir>/<outbox id>.eml` atomically (a temporary file, then a rename).
async fn write_file(
    dir: &std::path::Path,
    email: &OutboxEmail,
    bytes: &[u8],
) -> Result<(), String> {
    let final_path = dir.join(format!("{}.eml", email.id));
    let temporary = dir.join(format!(".{}.eml.tmp", email.id));
    tokio::fs::write(&temporary, bytes)
        .await
        .map_err(|e| e.to_string())?;
    tokio::fs::rename(&temporary, &final_path)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(to = %email.recipient, subject = %email.subject, path = %final_path.display(), "mail written to a file (no SMTP configured)");
    Ok(())
}

impl Actor for Mailer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(
            Duration::from_millis(self.settings.poll_interval_ms),
            |act, ctx| act.drain(ctx),
        );
        ctx.notify(Wake);
    }
}

impl Handler<Wake> for Mailer {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.drain(ctx);
    }
}

/// Lets the batch being sent finish, then sends what is due now.
impl Handler<Flush> for Mailer {
    type Result = actix::ResponseFuture<()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let transport = self.transport.clone();
        let from = self.from.clone();
        let settings = self.settings.clone();
        let batch = self.batch.clone();
        Box::pin(async move {
            let _sending = batch.lock().await;
            drain_once(store.as_ref(), &transport, &from, &settings).await;
        })
    }
}
