//! Mail: a durable outbox. A use case that sends mail only inserts an outbox row in its own
//! transaction ([`Mailer::enqueue`]); the [`worker`] delivers it over SMTP, or as an `.eml` file
//! when no SMTP server is configured, with retries and exponential backoff.

use moltflow_core::ids::new_id;
use moltflow_store::AsDbConn;
use moltflow_store::mail::{OutboxRow, insert_mail};
use tokio::sync::Notify;

use crate::config::Config;

pub mod templates;
pub mod transport;
pub mod worker;

use templates::Templates;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailKind {
    VerifyEmail,
    PasswordReset,
    MagicLink,
    Invitation,
    /// The notice of a first proof of the mailbox, listing what was taken back (API.md §3).
    AccountSecured,
}

impl MailKind {
    pub const ALL: [MailKind; 5] = [
        MailKind::VerifyEmail,
        MailKind::PasswordReset,
        MailKind::MagicLink,
        MailKind::Invitation,
        MailKind::AccountSecured,
    ];

    /// The template file stem, also stored as the outbox row's `kind`.
    pub fn template(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::PasswordReset => "password_reset",
            MailKind::MagicLink => "magic_link",
            MailKind::Invitation => "invitation",
            MailKind::AccountSecured => "account_secured",
        }
    }
}

pub struct Mailer {
    templates: Templates,
    public_url: String,
    /// Wakes the worker when a mail was queued, so delivery does not wait for the next poll.
    pub(crate) wake: Notify,
    /// Mail requests answered already and still being queued on a task of their own.
    pub queueing: Queueing,
}

/// Counts mail requests being queued off the request path (`services::recovery`), so that a pass
/// of the outbox can first wait for the mail they are about to queue.
#[derive(Default)]
pub struct Queueing {
    running: std::sync::Arc<tokio::sync::watch::Sender<usize>>,
}

/// One queueing in progress, taken before the request answers; dropping it (done or failed) ends it.
pub struct QueueingGuard(std::sync::Arc<tokio::sync::watch::Sender<usize>>);

impl Queueing {
    pub fn start(&self) -> QueueingGuard {
        self.running.send_modify(|n| *n += 1);
        QueueingGuard(self.running.clone())
    }

    /// Waits until no queueing is in progress.
    pub async fn idle(&self) {
        let _ = self.running.subscribe().wait_for(|n| *n == 0).await;
    }
}

impl Drop for QueueingGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Mailer {
    pub fn new(config: &Config) -> anyhow::Result<Mailer> {
        Ok(Mailer {
            templates: Templates::load(config.mail.templates_dir.as_deref())?,
            public_url: config.server.public_url.clone(),
            wake: Notify::new(),
            queueing: Queueing::default(),
        })
    }

    /// `MOLTFLOW_PUBLIC_URL` + `path` + `?token=…`: the page a front end serves for this step.
    pub fn link(&self, path: &str, token: &str) -> String {
        format!("{}{path}?token={token}", self.public_url)
    }

    /// Renders a mail and queues it in the caller's transaction. `to` must be a validated address
    /// (`moltflow_core::Email`): it becomes the `To` header. The row is stamped `queued_at`, the
    /// use case's reading of the service clock, which the per-address caps count on and the
    /// worker reads too; it is due at once.
    pub async fn enqueue(
        &self,
        c: &mut impl AsDbConn,
        kind: MailKind,
        to: &str,
        vars: &[(&str, &str)],
        queued_at: i64,
    ) -> moltflow_store::Result<()> {
        let mail = self.templates.render(kind, vars);
        insert_mail(
            c,
            &OutboxRow {
                id: new_id(),
                to_addr: to.to_owned(),
                kind: kind.template().to_owned(),
                subject: mail.subject,
                text_body: mail.text,
                html_body: mail.html,
                created_at: queued_at,
                next_attempt_at: queued_at,
                attempts: 0,
                last_error: None,
                sent_at: None,
                failed_at: None,
                locked_until: None,
            },
        )
        .await
    }

    /// Tells the worker that mail is waiting (call after the transaction committed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The first link to this service in a mail's text, for the log line of the file transport.
    pub(crate) fn find_link<'a>(&self, text: &'a str) -> Option<&'a str> {
        text.split_whitespace().find(|w| w.starts_with(&self.public_url))
    }
}
