//! `AppState`: everything a request may need, behind one `Arc`.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use moltflow_store::Store;

use crate::auth::cache::AuthCache;
use crate::auth::jwt::JwtKeys;
use crate::auth::last_used::LastUsed;
use crate::auth::password::PasswordHasher;
use crate::auth::rate_limit::PrincipalLimiter;
use crate::auth::throttle::{IpLimiter, LoginLockout};
use crate::config::Config;
use crate::telemetry;

/// Per-IP and per-account throttles of the public auth routes (API.md §3).
pub struct Limits {
    /// Requests per principal by plan (API.md §9).
    pub principal: PrincipalLimiter,
    pub login_ip: IpLimiter,
    pub register_ip: IpLimiter,
    pub login_lockout: LoginLockout,
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        let scale = config.rate_limit_scale;
        Limits {
            principal: PrincipalLimiter::new(&config.rate_limits, scale),
            login_ip: IpLimiter::per_minute(30, scale),
            register_ip: IpLimiter::per_minute(60, scale),
            login_lockout: LoginLockout::new(scale),
        }
    }

    pub fn sweep(&self) {
        self.principal.sweep();
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
    pub last_used: LastUsed,
    pub limits: Limits,
    pub metrics: PrometheusHandle,
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
        let limits = Limits::new(&config);
        Ok(AppState(Arc::new(App {
            jwt,
            hasher,
            limits,
            auth_cache: AuthCache::default(),
            last_used: LastUsed::default(),
            metrics: telemetry::metrics_handle(),
            store,
            config,
        })))
    }
}
