//! Running the service: listen, connect, migrate, announce, and drain on SIGTERM / Ctrl-C.

use moltflow_store::{PoolSettings, Store};
use tokio::net::TcpListener;

use crate::app::app;
use moltflow_core::billing::Provider;

use crate::http_server::{self, Deadlines};
use crate::startup::Summary;
use crate::state::AppState;
use moltflow_app::config::Config;
use moltflow_app::mail::worker::OutboxWorker;
use moltflow_app::workers;

/// Opens the configured database and applies pending migrations; answers how many were applied.
pub async fn open_store(config: &Config) -> anyhow::Result<(Store, usize)> {
    let settings = PoolSettings {
        max_connections: config.database.max_connections,
        acquire_timeout: config.database.acquire_timeout,
    };
    let store = Store::connect_with(&config.database.url, settings, None).await?;
    let applied = store.migrate().await?;
    Ok((store, applied))
}

/// The local provider's pay page grants any plan without payment. That is what a developer
/// wants on loopback, and a free upgrade for anyone on a reachable address: there it must be
/// chosen explicitly, never by default.
pub fn check_billing_exposure(config: &Config) -> anyhow::Result<()> {
    if config.billing.provider == Provider::Local
        && !config.billing.provider_explicit
        && !config.server.binds_loopback()
    {
        anyhow::bail!(
            "MOLTFLOW_BILLING_PROVIDER: unset, so the local provider (whose checkout page grants plans without payment) \
             would serve on the non-loopback MOLTFLOW_BIND {}; set MOLTFLOW_BILLING_PROVIDER=stripe, or \
             MOLTFLOW_BILLING_PROVIDER=local to allow it",
            config.server.bind
        );
    }
    Ok(())
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    check_billing_exposure(&config)?;
    // Listen before the database is opened: a port already taken must not leave a new, empty
    // SQLite file behind.
    let listener = TcpListener::bind(config.server.bind)
        .await
        .map_err(|e| anyhow::anyhow!("MOLTFLOW_BIND: cannot listen on {}: {e}", config.server.bind))?;
    let (store, applied) = open_store(&config).await?;
    let state = AppState::new(config.clone(), store.clone()).await?;
    let workers = workers::spawn(&state.0);
    let outbox = OutboxWorker::spawn(state.0.clone())?;
    let redis_up = state.rate_limits.shared.as_ref().map(|s| s.is_up());
    Summary::new(&config, listener.local_addr()?, applied, redis_up).announce(&config.telemetry.log_format);
    http_server::serve(listener, app(state), Deadlines::of(&config), shutdown_signal()).await?;
    tracing::info!("drained; flushing background work");
    // After the HTTP drain: the mail in hand is finished; the rest stays in the outbox (durable)
    // for the next start or another node.
    outbox.stop().await;
    workers.shutdown().await;
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_map(&map).unwrap()
    }

    #[test]
    fn the_default_local_provider_serves_only_on_loopback() {
        // Stripe bills a price per paid plan and cycle: a catalogue of one free plan needs none.
        let plans = std::env::temp_dir().join(format!("moltflow-plans-{}.toml", std::process::id()));
        let free = "[[plans]]\nplan_id = \"free\"\ndisplay_name = \"Free\"\nmonthly = { amount_cents = 0 }\nyearly = { amount_cents = 0 }\n";
        std::fs::write(&plans, free).unwrap();
        let plans = plans.display().to_string();
        for bind in ["127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8080", "[::ffff:127.0.0.1]:8080"] {
            assert!(check_billing_exposure(&config(&[("bind", bind)])).is_ok(), "{bind}");
        }
        for bind in ["0.0.0.0:8080", "[::]:8080", "192.168.1.10:8080", "[fe80::1]:8080", "[::ffff:10.0.0.1]:80"] {
            let e = check_billing_exposure(&config(&[("bind", bind)])).unwrap_err().to_string();
            assert!(e.starts_with("MOLTFLOW_BILLING_PROVIDER:") && !e.contains('\n'), "{e}");
            assert!(check_billing_exposure(&config(&[("bind", bind), ("billing_provider", "local")])).is_ok());
            let stripe = [
                ("bind", bind),
                ("billing_provider", "stripe"),
                ("stripe_secret_key", "sk_test_x"),
                ("plans_file", plans.as_str()),
            ];
            assert!(check_billing_exposure(&config(&stripe)).is_ok());
        }
        let _ = std::fs::remove_file(&plans);
    }
}
