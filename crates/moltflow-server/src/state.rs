//! `AppState`: everything a request may need, behind one `Arc`.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use moltflow_store::Store;

use crate::auth::cache::AuthCache;
use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::auth::throttle::{IpLimiter, LoginLockout};
use crate::config::Config;
use crate::mail::Mailer;
use crate::telemetry;

/// Per-IP and per-account throttles of the public auth routes (API.md §3).
pub struct Limits {
    pub login_ip: IpLimiter,
    pub register_ip: IpLimiter,
    pub login_lockout: LoginLockout,
    pub forgot_password_ip: IpLimiter,
    pub magic_link_ip: IpLimiter,
}

impl Limits {
    pub fn new(scale: f64) -> Limits {
        Limits {
            login_ip: IpLimiter::per_minute(30, scale),
            register_ip: IpLimiter::per_minute(60, scale),
            login_lockout: LoginLockout::new(scale),
            forgot_password_ip: IpLimiter::per_minute(10, scale),
            magic_link_ip: IpLimiter::per_minute(10, scale),
        }
    }

    pub fn sweep(&self) {
        self.login_ip.sweep();
        self.register_ip.sweep();
        self.forgot_password_ip.sweep();
        self.magic_link_ip.sweep();
    }
}

pub struct App {
    pub config: Config,
    pub store: Store,
    pub jwt: JwtKeys,
    pub hasher: PasswordHasher,
    pub auth_cache: AuthCache,
    pub limits: Limits,
    pub mailer: Mailer,
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
        let limits = Limits::new(config.rate_limit_scale);
        let mailer = Mailer::new(&config)?;
        Ok(AppState(Arc::new(App {
            jwt,
            hasher,
            limits,
            mailer,
            auth_cache: AuthCache::default(),
            metrics: telemetry::metrics_handle(),
            store,
            config,
        })))
    }
}
