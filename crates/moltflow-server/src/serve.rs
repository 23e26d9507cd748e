//! Running the service: listen, connect, migrate, announce, and drain on SIGTERM / Ctrl-C.

use moltflow_store::Store;
use std::net::SocketAddr;
use tokio::net::TcpListener;

use crate::app::app;
use crate::config::Config;
use crate::mail::worker::OutboxWorker;
use crate::startup::Summary;
use crate::state::AppState;
use crate::workers;

/// Opens the configured database and applies pending migrations; answers how many were applied.
pub async fn open_store(config: &Config) -> anyhow::Result<(Store, usize)> {
    let store = Store::connect(&config.database_url, config.db_max_connections).await?;
    let applied = store.migrate().await?;
    Ok((store, applied))
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Listen before the database is opened: a port already taken must not leave a new, empty
    // SQLite file behind.
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("MOLTFLOW_BIND: cannot listen on {}: {e}", config.bind))?;
    let (store, applied) = open_store(&config).await?;
    if config.redis_url.is_some() {
        tracing::warn!(
            "MOLTFLOW_REDIS_URL is set, but this version keeps rate limits and caches per node: \
             revocations reach other nodes within a second through the database, limits are per node"
        );
    }
    let state = AppState::new(config.clone(), store.clone()).await?;
    let workers = workers::spawn(&state);
    let outbox = OutboxWorker::spawn(state.clone())?;
    Summary::new(&config, listener.local_addr()?, applied).announce(&config.log_format);
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
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
