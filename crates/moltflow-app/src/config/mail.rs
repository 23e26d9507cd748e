//! How mail leaves: SMTP, or files when no SMTP server is configured.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::read::Raw;
use super::{ConfigError, err};

#[derive(Clone, Debug)]
pub struct MailConfig {
    pub smtp_url: Option<SecretString>,
    /// Where mail files go without SMTP.
    pub dir: PathBuf,
    pub from: String,
    /// A directory whose files replace the built-in mail templates of the same name.
    pub templates_dir: Option<PathBuf>,
    /// How often the outbox worker looks for due mail when nothing wakes it (not an env variable:
    /// tests shorten it).
    pub poll_interval: Duration,
    /// The first retry delay of a failed delivery; each further failure doubles it (up to 15 min).
    pub backoff_base: Duration,
}

impl MailConfig {
    pub fn read(raw: &Raw) -> Result<MailConfig, ConfigError> {
        let smtp_url = raw.get("smtp_url");
        if let Some(u) = &smtp_url {
            if !(u.starts_with("smtp://") || u.starts_with("smtps://")) {
                return Err(err("smtp_url", "must start with smtp:// or smtps://"));
            }
            // The message names the scheme rule only: the URL may carry a password.
            if lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(u).is_err() {
                return Err(err(
                    "smtp_url",
                    "not a usable SMTP URL (smtp://[user:pass@]host[:port][?tls=required] or smtps://…)",
                ));
            }
        }
        let from = raw.get("mail_from").unwrap_or_else(|| "MoltFlow <no-reply@localhost>".to_owned());
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(err("mail_from", format!("not a mailbox like \"Name <addr@host>\": {from:?}")));
        }
        let templates_dir = raw.get("mail_templates_dir").map(PathBuf::from);
        if let Some(d) = &templates_dir
            && !d.is_dir()
        {
            return Err(err("mail_templates_dir", format!("no such directory: {}", d.display())));
        }
        Ok(MailConfig {
            smtp_url: smtp_url.map(SecretString::from),
            dir: PathBuf::from(raw.get("mail_dir").unwrap_or_else(|| "./mail".to_owned())),
            from,
            templates_dir,
            poll_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
        })
    }
}
