//! The outbox worker: claims due mail, delivers it, marks it sent (wiping its bodies) or schedules
//! a retry with exponential backoff. It wakes when a mail is queued and polls besides, so rows
//! left by a restart, another node or a failed attempt are picked up too.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use moltflow_core::clock::MINUTE_MS;
use moltflow_store::mail::{OutboxRow, claim_due_mail, mark_mail_failed, mark_mail_sent, release_mail};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::transport::{Delivered, DeliveryError, Transport};

use crate::state::App;

const BATCH: i64 = 10;
/// How long a claim lasts: a node that dies mid-batch leaves its rows to the others after this.
const CLAIM_MS: i64 = 5 * MINUTE_MS;
const MAX_BACKOFF_MS: i64 = 15 * MINUTE_MS;

/// The running worker; [`OutboxWorker::stop`] finishes the mail in hand and returns.
pub struct OutboxWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl OutboxWorker {
    pub fn spawn(state: Arc<App>) -> anyhow::Result<OutboxWorker> {
        let outbox = Outbox::new(state)?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(outbox, stopped));
        Ok(OutboxWorker { stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The outbox with its transport: what the worker runs, and what tests drive a pass at a time
/// ([`Outbox::run_once`]) with the clock they move (`App::clock`).
pub struct Outbox {
    state: Arc<App>,
    transport: Transport,
    from: Mailbox,
}

impl Outbox {
    pub fn new(state: Arc<App>) -> anyhow::Result<Outbox> {
        let transport = Transport::from_config(&state.config)?;
        let from: Mailbox = state.config.mail.from.parse().map_err(|e| anyhow::anyhow!("MOLTFLOW_MAIL_FROM: {e}"))?;
        Ok(Outbox { state, transport, from })
    }

    /// Attempts every mail due now (as `App::clock` reads it) once; answers how many. Mail
    /// requests answered already and still being queued on a task of their own are waited for
    /// first, so that a pass after a request sees its mail.
    pub async fn run_once(&self) -> usize {
        self.state.mailer.queueing.idle().await;
        let (never, _) = watch::channel(false);
        self.drain(&never.subscribe()).await
    }

    /// Sends due mail until none is left (or the worker is told to stop); answers how many
    /// deliveries were attempted.
    async fn drain(&self, stopped: &watch::Receiver<bool>) -> usize {
        let state = &self.state;
        let mut attempted = 0;
        loop {
            let now = state.clock.now_ms();
            let batch = match claim(state, now).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "mail outbox: cannot claim due mail");
                    return attempted;
                }
            };
            let full = batch.len() as i64 == BATCH;
            let mut rows = batch.into_iter();
            for row in rows.by_ref() {
                if *stopped.borrow() {
                    break;
                }
                let outcome = self.transport.deliver(&self.from, &row).await;
                attempted += 1;
                if let Err(e) = record(state, &row, outcome).await {
                    tracing::warn!(error = %e, mail_id = %row.id, "mail outbox: cannot record a delivery");
                }
            }
            // Claimed but not attempted (stopping): give them back at once rather than after the claim.
            for row in rows {
                if let Ok(mut conn) = state.store.conn().await {
                    let _ = release_mail(&mut conn, &row.id).await;
                }
            }
            if !full || *stopped.borrow() {
                return attempted;
            }
        }
    }
}

async fn run(outbox: Outbox, mut stopped: watch::Receiver<bool>) {
    loop {
        outbox.drain(&stopped).await;
        if *stopped.borrow() {
            return;
        }
        tokio::select! {
            _ = outbox.state.mailer.wake.notified() => {}
            _ = tokio::time::sleep(outbox.state.config.mail.poll_interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn claim(state: &Arc<App>, now: i64) -> moltflow_store::Result<Vec<OutboxRow>> {
    let mut tx = state.store.begin().await?;
    let rows = claim_due_mail(&mut tx, now, now + CLAIM_MS, BATCH).await?;
    tx.commit().await?;
    Ok(rows)
}

async fn record(
    state: &Arc<App>,
    row: &OutboxRow,
    outcome: Result<Delivered, DeliveryError>,
) -> moltflow_store::Result<()> {
    let now = state.clock.now_ms();
    let attempts = row.attempts + 1;
    let mut conn = state.store.conn().await?;
    match outcome {
        Ok(delivered) => {
            mark_mail_sent(&mut conn, &row.id, now, attempts).await?;
            match delivered {
                Delivered::Smtp => tracing::info!(mail_id = %row.id, kind = %row.kind, attempts, "mail sent"),
                // Without SMTP (development, the embedded set-up) the link is logged so that it
                // can be followed without opening the file.
                Delivered::File(path) => tracing::info!(
                    mail_id = %row.id, kind = %row.kind, to = %row.to_addr, file = %path.display(),
                    link = state.mailer.find_link(&row.text_body).unwrap_or(""), "mail written to file"
                ),
            }
        }
        Err(e) => {
            let delay = backoff_ms(state.config.mail.backoff_base, attempts);
            let failed_at = e.permanent.then_some(now);
            mark_mail_failed(&mut conn, &row.id, attempts, now + delay, &e.message, failed_at).await?;
            if e.permanent {
                tracing::error!(mail_id = %row.id, kind = %row.kind, error = %e.message, "mail refused for good");
            } else {
                tracing::warn!(mail_id = %row.id, kind = %row.kind, attempts, retry_in_ms = delay,
                    error = %e.message, "mail delivery failed; will retry");
            }
        }
    }
    Ok(())
}

/// `base · 2^(attempts−1)`, at most 15 minutes.
pub fn backoff_ms(base: Duration, attempts: i64) -> i64 {
    let base = base.as_millis().min(MAX_BACKOFF_MS as u128) as i64;
    let exp = (attempts - 1).clamp(0, 30) as u32;
    base.saturating_mul(1i64 << exp).min(MAX_BACKOFF_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_fifteen_minutes() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff_ms(base, 1), 1000);
        assert_eq!(backoff_ms(base, 2), 2000);
        assert_eq!(backoff_ms(base, 5), 16_000);
        assert_eq!(backoff_ms(base, 11), 900_000);
        assert_eq!(backoff_ms(base, 1000), 900_000);
    }
}
