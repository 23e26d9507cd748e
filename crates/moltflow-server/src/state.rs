//! `AppState`: everything a request may need, behind one `Arc`.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use moltflow_core::plan::PlanCatalogue;
use moltflow_store::Store;

use crate::auth::cache::AuthCache;
use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::auth::throttle::{IpLimiter, LoginLockout};
use crate::config::Config;
use crate::services::usage::writer::UsageWriter;
use crate::telemetry;

/// Per-IP and per-account throttles of the public auth routes (API.md §3).
pub struct Limits {
    pub login_ip: IpLimiter,
    pub register_ip: IpLimiter,
    pub login_lockout: LoginLockout,
}

impl Limits {
    pub fn new(scale: f64) -> Limits {
        Limits {
            login_ip: IpLimiter::per_minute(30, scale),
            register_ip: IpLimiter::per_minute(60, scale),
            login_lockout: LoginLockout::new(scale),
        }
    }

    pub fn sweep(&self) {
        self.login_ip.sweep();
        self.register_ip.sweep();
    }
}

pub struct App {
    pub config: Config,
    pub store: Store,
    pub jwt: JwtKeys,
    pub hasher: PasswordHasher,
    pub auth_cache: AuthCache,
    pub limits: Limits,
    pub metrics: PrometheusHandle,
    /// The plan catalogue quota decisions read (the built-in one until billing loads a file).
    pub plans: Arc<PlanCatalogue>,
    /// Group-commit writer of usage events and consumes.
    pub usage: UsageWriter,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl AppState {
    /// Builds the state over a migrated store: loads (or creates) the signing key.
    pub async fn new(config: Config, store: Store) -> anyhow::Result<AppState> {
        let jwt = JwtKeys::load_or_create(&store, config.jwt_private_key.as_ref(), &config.public_url).await?;
        let hasher = PasswordHasher::new(&config.hash_params, config.hash_concurrency)?;
        let limits = Limits::new(config.rate_limit_scale);
        let plans = Arc::new(PlanCatalogue::builtin());
        let usage = UsageWriter::spawn(store.clone(), plans.clone());
        Ok(AppState(Arc::new(App {
            jwt,
            hasher,
            limits,
            auth_cache: AuthCache::default(),
            metrics: telemetry::metrics_handle(),
            plans,
            usage,
            store,
            config,
        })))
    }
}
