//! Background work beside the HTTP server: the `last_used_at` writer, the audit writer, the
//! revocation listener and periodic housekeeping.
//! `shutdown` stops them after the HTTP drain and lets each write what it holds.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::last_used;
use std::sync::Arc;

use crate::state::App;

pub struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

pub fn spawn(state: &Arc<App>) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let mut handles = Vec::new();
    if let Some(rx) = state.last_used.take_receiver() {
        handles.push(tokio::spawn(last_used::run(state.store.clone(), rx, stopped.clone())));
    }
    if let Some(rx) = state.audit_queue.take_receiver() {
        handles.push(tokio::spawn(crate::services::audit_queue::run(state.store.clone(), rx, stopped.clone())));
    }
    handles.push(tokio::spawn(metrics_upkeep(state.clone(), stopped.clone())));
    if let Some(shared) = &state.rate_limits.shared {
        let interval = state.config.limits.redis_probe_interval;
        handles.push(tokio::spawn(crate::auth::shared::probe_loop(shared.clone(), interval, stopped.clone())));
    }
    // Other nodes' revocations (PostgreSQL; returns at once on SQLite).
    handles.push(tokio::spawn(crate::auth::listener::run(state.clone(), stopped.clone())));
    handles.push(tokio::spawn(housekeeping(state.clone(), stopped)));
    Workers { stop, handles }
}

impl Workers {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// The Prometheus recorder keeps every histogram sample until it is folded into the buckets, which
/// happens on a scrape or on upkeep. Without a scraper, samples would pile up for ever (tens of MB a
/// minute under load), so upkeep runs here whether or not anyone reads `/metrics`.
async fn metrics_upkeep(state: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(crate::telemetry::METRICS_UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => state.metrics.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}

/// Periodic clean-up: limiter state, ended local subscriptions, expired usage idempotency keys.
async fn housekeeping(state: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.rate_limits.sweep();
                if let Err(e) = state.billing().end_due_local_subscriptions().await {
                    tracing::warn!(error = %e, code = e.code(), "ending due local subscriptions failed");
                }
                if let Err(e) = state.usage().sweep_idempotency_keys().await {
                    tracing::warn!(error = %e, code = e.code(), "sweeping usage idempotency keys failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
