//! The task that hears other nodes' revocations (PostgreSQL only) and applies them to this node's
//! authentication cache.
//!
//! Whenever it (re)connects, the cache is flushed: messages sent while it was away are lost, and
//! whatever they named must not outlive them. A connection that goes quiet is proven alive with a
//! heartbeat (a message to itself) and replaced if nothing comes back, so that a connection a
//! firewall dropped silently does not leave the node deaf. While it is down the one-second
//! lifetime of cached states bounds how long a revocation elsewhere goes unnoticed here.
//!
//! `/metrics`: `moltflow_revocation_listener_connected` (1 or 0),
//! `moltflow_revocation_listener_reconnects_total`, `moltflow_revocation_messages_total`
//! (messages from other nodes applied), `moltflow_revocation_delay_seconds` (from the sender's
//! announcement to applied here), `moltflow_auth_cache_flushes_total`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moltflow_store::signals::{Heard, Listener, Signals, notify};
use tokio::sync::watch;

use super::revocation::{Invalidation, Message, epoch_micros};

use crate::state::App;

/// Quiet this long, the listener sends a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Nothing heard (not even its own heartbeats) this long: the connection is dead.
const DEAD_AFTER: Duration = Duration::from_secs(15);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Why listening stopped.
enum Ended {
    Stopped,
    Lost(String),
}

/// Runs until `stop`; returns at once on SQLite.
pub async fn run(state: Arc<App>, mut stop: watch::Receiver<bool>) {
    let Some(signals) = state.store.signals().cloned() else { return };
    let connected = metrics::gauge!("moltflow_revocation_listener_connected");
    connected.set(0.0);
    let mut ever_connected = false;
    // When the current outage began (logged once, at its start).
    let mut down_since: Option<Instant> = None;
    let mut retry = FIRST_RETRY;
    loop {
        let attempt = tokio::select! {
            r = signals.listen() => r,
            _ = stop.changed() => return,
        };
        match attempt {
            Ok(mut listener) => {
                // Anything this node cached may have been revoked while it could not hear.
                state.auth_cache.flush();
                state.auth_cache.set_listening(true);
                connected.set(1.0);
                if let Some(since) = down_since.take() {
                    metrics::counter!("moltflow_revocation_listener_reconnects_total").increment(1);
                    tracing::info!(
                        down_ms = since.elapsed().as_millis() as u64,
                        "revocation listener reconnected; authentication cache flushed"
                    );
                } else if !ever_connected {
                    tracing::debug!(channel = signals.channel(), "revocation listener connected");
                }
                ever_connected = true;
                retry = FIRST_RETRY;
                let ended = listen(&state, &signals, &mut listener, &mut stop).await;
                state.auth_cache.set_listening(false);
                connected.set(0.0);
                match ended {
                    Ended::Stopped => return,
                    Ended::Lost(why) => {
                        tracing::warn!(
                            reason = %why,
                            "revocation listener lost its database connection; until it is back, revocations \
                             on other nodes reach this one within 1 s"
                        );
                        down_since = Some(Instant::now());
                        continue;
                    }
                }
            }
            Err(e) => {
                if down_since.is_none() {
                    tracing::warn!(
                        error = %e,
                        "revocation listener cannot connect; revocations on other nodes reach this one within 1 s \
                         until it does"
                    );
                    down_since = Some(Instant::now());
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = stop.changed() => return,
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Applies what the listener hears until its connection is lost or the task is stopped.
async fn listen(
    state: &Arc<App>,
    signals: &Signals,
    listener: &mut Listener,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut last_heard = Instant::now();
    loop {
        let heard = tokio::select! {
            r = tokio::time::timeout(HEARTBEAT, listener.recv()) => r,
            _ = stop.changed() => return Ended::Stopped,
        };
        match heard {
            Ok(Ok(Heard::Message(payload))) => {
                last_heard = Instant::now();
                apply(state, &payload).await;
            }
            Ok(Ok(Heard::Lost)) => return Ended::Lost("connection closed".to_owned()),
            Ok(Err(e)) => return Ended::Lost(e.to_string()),
            Err(_quiet) => {
                if last_heard.elapsed() >= DEAD_AFTER {
                    return Ended::Lost("no heartbeat came back".to_owned());
                }
                heartbeat(state, signals).await;
            }
        }
    }
}

/// A message to every listener, this one included: proof that the connection still delivers.
async fn heartbeat(state: &Arc<App>, signals: &Signals) {
    let text = Invalidation::default().messages(state.auth_cache.node_id()).concat();
    let sent = async {
        let mut conn = state.store.conn().await?;
        notify(&mut conn, signals.channel(), &text).await
    };
    if let Err(e) = sent.await {
        tracing::debug!(error = %e, "revocation heartbeat not sent");
    }
}

async fn apply(state: &Arc<App>, payload: &str) {
    let message: Message = match serde_json::from_str(payload) {
        Ok(m) => m,
        Err(e) => {
            // Whatever it named must not stay cached: start over.
            tracing::warn!(error = %e, "a revocation message this version does not understand; flushing the cache");
            state.auth_cache.flush();
            return;
        }
    };
    if message.node == state.auth_cache.node_id() || message.invalidation.is_empty() {
        return;
    }
    message.invalidation.apply(&state.auth_cache).await;
    metrics::counter!("moltflow_revocation_messages_total").increment(1);
    if let Some(sent) = message.sent_at_us {
        // From the announcement (just before the sender's commit) to applied here; across hosts
        // it includes their clocks' difference.
        let delay = (epoch_micros() - sent).max(0) as f64 / 1e6;
        metrics::histogram!("moltflow_revocation_delay_seconds").record(delay);
    }
}
