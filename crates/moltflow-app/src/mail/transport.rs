//! Where mail goes: an SMTP server (`MOLTFLOW_SMTP_URL`), or `.eml` files in `MOLTFLOW_MAIL_DIR`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use moltflow_store::mail::OutboxRow;
use secrecy::ExposeSecret;

use crate::config::Config;

/// SMTP dialogues slower than this count as failed attempts and are retried.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

/// A failed delivery: retried later unless `permanent` (the server refused the mail for good).
#[derive(Debug)]
pub struct DeliveryError {
    pub permanent: bool,
    pub message: String,
}

/// Where a delivered mail went.
pub enum Delivered {
    Smtp,
    File(PathBuf),
}

impl Transport {
    pub fn from_config(config: &Config) -> anyhow::Result<Transport> {
        match &config.mail.smtp_url {
            Some(url) => {
                let smtp = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|_| anyhow::anyhow!("MOLTFLOW_SMTP_URL: not a usable SMTP URL"))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                Ok(Transport::Smtp(smtp))
            }
            None => Ok(Transport::Files(config.mail.dir.clone())),
        }
    }

    pub async fn deliver(&self, from: &Mailbox, row: &OutboxRow) -> Result<Delivered, DeliveryError> {
        let message = build_message(from, row)?;
        match self {
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Ok(Delivered::Smtp),
                Err(e) => Err(DeliveryError { permanent: e.is_permanent(), message: short(&e.to_string()) }),
            },
            Transport::Files(dir) => write_file(dir, row, &message.formatted())
                .await
                .map(Delivered::File)
                .map_err(|e| DeliveryError { permanent: false, message: short(&format!("{e:#}")) }),
        }
    }
}

/// The message, with every header built by lettre from validated values: the address comes from
/// `moltflow_core::Email` (no CR/LF), the subject from a template with control characters removed,
/// and no display name of a user ever goes into a header.
fn build_message(from: &Mailbox, row: &OutboxRow) -> Result<Message, DeliveryError> {
    let permanent = |message: String| DeliveryError { permanent: true, message };
    let to: Mailbox = row.to_addr.parse().map_err(|_| permanent("invalid recipient address".to_owned()))?;
    // The same Message-ID on every attempt: a mail delivered twice (the server kept it but the
    // connection dropped before its `250`) is recognisably one mail, and mail stores that
    // de-duplicate by Message-ID show it once.
    let message_id = format!("<{}@{}>", row.id, from.email.domain());
    Message::builder()
        .message_id(Some(message_id))
        .from(from.clone())
        .to(to)
        .subject(row.subject.clone())
        .multipart(MultiPart::alternative_plain_html(row.text_body.clone(), row.html_body.clone()))
        .map_err(|e| permanent(format!("cannot build the message: {e}")))
}

/// Writes `<outbox id>-<kind>.eml` whole (a temporary file renamed into place), so a reader never
/// sees half a mail.
async fn write_file(dir: &std::path::Path, row: &OutboxRow, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}-{}.eml", row.id, row.kind));
    let tmp = dir.join(format!(".{}.tmp", row.id));
    tokio::fs::write(&tmp, bytes).await.with_context(|| format!("writing {}", tmp.display()))?;
    tokio::fs::rename(&tmp, &path).await.with_context(|| format!("renaming to {}", path.display()))?;
    Ok(path)
}

fn short(s: &str) -> String {
    s.chars().take(500).collect()
}
