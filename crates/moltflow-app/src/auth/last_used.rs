//! `last_used_at` of API keys, written at most once a minute per key and never on the request's
//! path: requests drop a note in a channel; a worker writes the notes in batches every second and
//! once more when the service stops (or at once when flushed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use moltflow_core::clock::MINUTE_MS;
use moltflow_store::Store;
use moltflow_store::api_keys::touch_api_keys;
use tokio::sync::{mpsc, oneshot};

use super::cache::KeyState;

/// What the writer receives.
pub enum Note {
    /// A key was used at this time.
    Used(String, i64),
    /// Answered once every use noted before it is written.
    Flush(oneshot::Sender<()>),
}

pub struct LastUsed {
    tx: mpsc::UnboundedSender<Note>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Note>>>,
}

impl Default for LastUsed {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        LastUsed { tx, rx: Mutex::new(Some(rx)) }
    }
}

impl LastUsed {
    /// Notes a use unless one was noted for this key within the last minute.
    pub fn note(&self, key: &KeyState, now: i64) {
        let last = key.last_used_at.load(Ordering::Relaxed);
        if now - last >= MINUTE_MS
            && key.last_used_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let _ = self.tx.send(Note::Used(key.id.clone(), now));
        }
    }

    /// Waits until every use noted before this call is written (tests), rather than for the
    /// next tick of the writer.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Note::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }

    /// The receiving end, for the one worker that writes the notes.
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Note>> {
        self.rx.lock().ok()?.take()
    }
}

/// Writes noted uses every second (or when flushed) until `stop` fires, then writes what is left.
pub async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Note>, stop: tokio::sync::watch::Receiver<bool>) {
    let mut stop = stop;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut pending: HashMap<String, i64> = HashMap::new();
    let mut waiters = Vec::new();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
            note = rx.recv() => match note {
                // Uses wait for the tick, so that a busy key costs one write a second at most.
                Some(Note::Used(id, at)) => {
                    let slot = pending.entry(id).or_insert(at);
                    *slot = (*slot).max(at);
                    continue;
                }
                Some(Note::Flush(done)) => {
                    waiters.push(done);
                    false
                }
                None => true,
            },
        };
        while let Ok(note) = rx.try_recv() {
            match note {
                Note::Used(id, at) => {
                    let slot = pending.entry(id).or_insert(at);
                    *slot = (*slot).max(at);
                }
                Note::Flush(done) => waiters.push(done),
            }
        }
        if !pending.is_empty() {
            let uses: Vec<(String, i64)> = pending.drain().collect();
            let written = async {
                let mut tx = store.begin().await?;
                touch_api_keys(&mut tx, &uses).await?;
                tx.commit().await
            };
            if let Err(e) = written.await {
                tracing::warn!(error = %e, keys = uses.len(), "writing api key last_used_at failed");
            }
        }
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
        if stopping {
            break;
        }
    }
}
