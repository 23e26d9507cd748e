//! Running the service: connect, migrate, listen, and drain on SIGTERM / Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use moltflow_store::Store;
use tokio::net::TcpListener;

use crate::app::app;
use crate::config::Config;
use crate::state::AppState;

/// Opens the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database_url, config.db_max_connections).await?;
    store.migrate().await?;
    Ok(store)
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let state = AppState::new(config.clone(), store.clone()).await?;
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("MOLTFLOW_BIND: cannot listen on {}: {e}", config.bind))?;
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    tracing::info!(addr = %listener.local_addr()?, database = ?store.backend(), "moltflow listening");
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    housekeeping.abort();
    tracing::info!("drained; shutting down");
    store.close().await;
    Ok(())
}

/// Periodic clean-up of in-memory limiter state and expired usage idempotency keys.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.limits.sweep();
        if let Err(e) = crate::services::usage::sweep_idempotency_keys(&state).await {
            tracing::warn!(error = ?e.code, "sweeping usage idempotency keys");
        }
    }
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
