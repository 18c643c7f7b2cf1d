//! A real SMTP server for the tests, in the test process: mailin-embedded listening on a loopback
//! port, keeping every message it accepts so that tests can read them like a mailbox.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server};

use crate::helpers::{spawn_app_with, Backend, TestApp};

/// Receives mail for one test. Its server thread lives until the test process ends.
pub struct SmtpSink {
    pub port: u16,
    inbox: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[derive(Clone)]
struct Collector {
    inbox: Arc<Mutex<Vec<Vec<u8>>>>,
    current: Vec<u8>,
}

impl Handler for Collector {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.current.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = std::mem::take(&mut self.current);
        self.inbox.lock().unwrap().push(message);
        OK
    }
}

/// One received mail, decoded.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

impl ReceivedMail {
    /// The one-time token of the link in the mail.
    pub fn token(&self) -> String {
        let start = self.text.find("token=").expect("a link with a token") + "token=".len();
        self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpSink {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts an SMTP server on `port`; it accepts connections once this returns.
    pub fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("a free loopback port");
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let mut server = Server::new(Collector {
            inbox: inbox.clone(),
            current: Vec::new(),
        });
        server
            .with_name("sink.test")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpSink { port, inbox }
    }

    /// Everything received so far, decoded.
    pub fn received(&self) -> Vec<ReceivedMail> {
        let raw: Vec<Vec<u8>> = self.inbox.lock().unwrap().clone();
        raw.iter()
            .map(|bytes| {
                let parsed = mailparse::parse_mail(bytes).unwrap();
                let header = |name: &str| {
                    parsed
                        .headers
                        .iter()
                        .find(|h| h.get_key().eq_ignore_ascii_case(name))
                        .map(|h| h.get_value())
                        .unwrap_or_default()
                };
                let part = |mime: &str| {
                    parsed
                        .subparts
                        .iter()
                        .find(|p| p.ctype.mimetype == mime)
                        .map(|p| p.get_body().unwrap())
                        .unwrap_or_default()
                };
                ReceivedMail {
                    to: header("To"),
                    subject: header("Subject"),
                    message_id: header("Message-ID"),
                    text: part("text/plain"),
                    html: part("text/html"),
                }
            })
            .collect()
    }

    /// Waits (up to 10 s) until `count` mails have arrived, and returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<ReceivedMail> {
        let started = Instant::now();
        loop {
            let mails = self.received();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "expected {count} mails, got {}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 10 s) for the `n`th mail (from 1) to `to` whose subject has `subject`,
    /// whatever else arrives meanwhile.
    pub async fn nth_mail_to(&self, n: usize, to: &str, subject: &str) -> ReceivedMail {
        let started = Instant::now();
        loop {
            let mut matching = self
                .received()
                .into_iter()
                .filter(|mail| mail.to.contains(to) && mail.subject.contains(subject));
            if let Some(mail) = matching.nth(n - 1) {
                return mail;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no mail number {n} to {to} about {subject:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An authd that mails to a sink of its own, and the sink.
pub async fn spawn_app_mailing(backend: Backend) -> (TestApp, SmtpSink) {
    spawn_app_mailing_with(backend, |_| {}).await
}

/// [`spawn_app_mailing`], then `customize` on the settings.
pub async fn spawn_app_mailing_with(
    backend: Backend,
    customize: impl FnOnce(&mut authd::config::Settings),
) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start();
    let port = sink.port;
    let app = spawn_app_with(backend, move |settings| {
        use_sink(settings, port);
        customize(settings);
    })
    .await;
    (app, sink)
}

impl TestApp {
    /// Asks for a password reset and returns the token of its mail, the sink's mail number
    /// `mails_before + 1`.
    pub async fn mailed_reset_token(
        &self,
        sink: &SmtpSink,
        email: &str,
        mails_before: usize,
    ) -> String {
        self.forgot_password(email).await;
        sink.wait_for(mails_before + 1).await[mails_before].token()
    }
}

/// Points the app's mail at the sink, with quick retries.
pub fn use_sink(settings: &mut authd::config::Settings, port: u16) {
    settings.mail.smtp_host = "127.0.0.1".into();
    settings.mail.smtp_port = port;
    settings.mail.smtp_tls = authd::config::SmtpTls::None;
    settings.mail.backoff_base_seconds = 1;
    settings.mail.backoff_max_seconds = 1;
    settings.mail.send_timeout_seconds = 2;
}
