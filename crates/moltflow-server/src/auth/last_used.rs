//! `last_used_at` of API keys, written at most once a minute per key and never on the request's
//! path: requests drop a note in a channel; a worker writes the notes in batches every second and
//! once more when the service stops.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use moltflow_core::clock::MINUTE_MS;
use moltflow_store::Store;
use moltflow_store::api_keys::touch_api_keys;
use tokio::sync::mpsc;

use super::cache::KeyState;

pub struct LastUsed {
    tx: mpsc::UnboundedSender<(String, i64)>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<(String, i64)>>>,
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
            let _ = self.tx.send((key.id.clone(), now));
        }
    }

    /// The receiving end, for the one worker that writes the notes.
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<(String, i64)>> {
        self.rx.lock().ok()?.take()
    }
}

/// Writes noted uses every second until `stop` fires, then writes what is left.
pub async fn run(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<(String, i64)>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = stop;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        let mut pending: HashMap<String, i64> = HashMap::new();
        while let Ok((id, at)) = rx.try_recv() {
            let slot = pending.entry(id).or_insert(at);
            *slot = (*slot).max(at);
        }
        if !pending.is_empty() {
            let uses: Vec<(String, i64)> = pending.into_iter().collect();
            let written = async {
                let mut tx = store.begin().await?;
                touch_api_keys(&mut tx, &uses).await?;
                tx.commit().await
            };
            if let Err(e) = written.await {
                tracing::warn!(error = %e, keys = uses.len(), "writing api key last_used_at failed");
            }
        }
        if stopping {
            break;
        }
    }
}
