//! `App`: the composition root. Everything a use case may need (the store, the clock, the
//! credential cache, limits, mail, billing), built once from the configuration; every way in
//! holds it behind one `Arc`.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use moltflow_core::clock::Clock;
use moltflow_core::plan::PlanCatalogue;
use moltflow_store::Store;
use secrecy::ExposeSecret;

use crate::auth::cache::AuthCache;
use crate::auth::failed_auth::FailedAuthThrottle;
use crate::auth::jwt::JwtKeys;
use crate::auth::last_used::LastUsed;
use crate::auth::lockout::LoginLockout;
use crate::auth::password::PasswordHasher;
use crate::auth::rate_limit::{MemoryPrincipalRates, PrincipalLimiter, PrincipalRates};
use crate::auth::shared::SharedStore;
use crate::auth::shared::rates::{SharedIpRates, SharedPrincipalRates};
use crate::auth::store::Chosen;
use crate::auth::throttle::{IpLimiter, IpRates, IpThrottle};
use crate::billing::{PriceIds, ProviderClient, stripe::StripeClient};
use crate::config::Config;
use crate::mail::Mailer;
use crate::services::audit_queue::AuditQueue;
use crate::services::usage::writer::UsageWriter;
use crate::telemetry;

/// Per-principal rates, per-IP and per-account throttles (API.md §3, §9): counted in this node's
/// memory, or with `MOLTFLOW_REDIS_URL` in Redis for every node (per node again while it is down).
pub struct RateLimits {
    /// Requests per principal by plan (API.md §9).
    pub principal: PrincipalLimiter,
    pub login_ip: IpThrottle,
    pub register_ip: IpThrottle,
    pub login_lockout: LoginLockout,
    pub forgot_password_ip: IpThrottle,
    pub magic_link_ip: IpThrottle,
    /// Failed API-key and token authentications per client network.
    pub failed_auth: FailedAuthThrottle,
    /// The Redis every limit above is shared through, if configured.
    pub shared: Option<Arc<SharedStore>>,
}

impl RateLimits {
    pub fn new(config: &Config) -> anyhow::Result<RateLimits> {
        let scale = config.limits.rate_limit_scale;
        let shared = match &config.limits.redis_url {
            Some(url) => Some(Arc::new(
                SharedStore::new(url.expose_secret(), &config.limits.redis_key_prefix, config.limits.redis_timeout)
                    .map_err(|e| anyhow::anyhow!("MOLTFLOW_REDIS_URL: {e}"))?,
            )),
            None => None,
        };
        let ip = |route: &'static str, per_minute: u32| {
            let per_node = IpLimiter::per_minute(per_minute, scale);
            match &shared {
                Some(store) => Chosen::Shared(SharedIpRates::new(store.clone(), route, per_node)),
                None => Chosen::PerNode(per_node),
            }
        };
        Ok(RateLimits {
            principal: match &shared {
                Some(store) => {
                    Chosen::Shared(SharedPrincipalRates::new(store.clone(), &config.limits.rate_limits, scale))
                }
                None => Chosen::PerNode(MemoryPrincipalRates::new(&config.limits.rate_limits, scale)),
            },
            login_ip: ip("login", 30),
            register_ip: ip("register", 60),
            login_lockout: LoginLockout::new(scale, shared.clone()),
            forgot_password_ip: ip("forgot-password", 10),
            magic_link_ip: ip("magic-link", 10),
            failed_auth: FailedAuthThrottle::new(scale, shared.clone()),
            shared,
        })
    }

    /// Drops per-node limiter state that has gone back to a full allowance.
    pub fn sweep(&self) {
        self.principal.sweep();
        self.login_ip.sweep();
        self.register_ip.sweep();
        self.forgot_password_ip.sweep();
        self.magic_link_ip.sweep();
    }
}

/// What taking payments needs: the provider's client, Stripe prices by plan and cycle, and the
/// local provider's portal sessions (token → tenant, kept in memory for an hour).
pub struct Payments {
    pub provider: ProviderClient,
    pub prices: PriceIds,
    pub local_portals: crate::services::billing::LocalPortals,
}

impl Payments {
    /// Builds the provider a valid configuration names (`Config` checked the Stripe secret and
    /// prices when it was read).
    fn new(config: &crate::config::BillingConfig) -> anyhow::Result<Payments> {
        let provider = match (config.provider, &config.stripe_secret_key) {
            (moltflow_core::billing::Provider::Stripe, Some(secret)) => ProviderClient::Stripe(StripeClient::new(
                &config.stripe_api_base,
                secret.clone(),
                std::time::Duration::from_millis(config.stripe_timeout_ms),
            )?),
            _ => ProviderClient::Local,
        };
        Ok(Payments {
            provider,
            prices: config.prices.clone(),
            local_portals: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
        })
    }
}

pub struct App {
    pub config: Config,
    pub payments: Payments,
    pub store: Store,
    pub jwt: JwtKeys,
    pub hasher: PasswordHasher,
    pub auth_cache: AuthCache,
    pub last_used: LastUsed,
    pub rate_limits: RateLimits,
    pub mailer: Mailer,
    pub metrics: PrometheusHandle,
    /// The plan catalogue (built in, or from `MOLTFLOW_PLANS_FILE`) that quotas and billing read.
    pub plans: Arc<PlanCatalogue>,
    /// Group-commit writer of usage events and consumes.
    pub usage_writer: UsageWriter,
    /// Everyone's clock: every use case, throttle, writer and worker reads this one (tests move it
    /// forward).
    pub clock: Clock,
    /// Audit entries written off the request path.
    pub audit_queue: AuditQueue,
}

impl App {
    /// Builds the state over a migrated store: loads (or creates) the signing key.
    pub async fn new(config: Config, store: Store) -> anyhow::Result<App> {
        crate::tls::install_crypto_provider();
        let jwt =
            JwtKeys::load_or_create(&store, config.auth.jwt_private_key.as_ref(), &config.server.public_url).await?;
        let hasher = PasswordHasher::new(&config.auth.hash_params, config.auth.hash_concurrency)?;
        // The recorder first: the shared limits register their gauges as they are built.
        let metrics = telemetry::metrics_handle();
        let rate_limits = RateLimits::new(&config)?;
        if let Some(shared) = &rate_limits.shared {
            // One probe now, so that a Redis that answers shares limits from the first request.
            shared.probe().await;
        }
        let payments = Payments::new(&config.billing)?;
        let mailer = Mailer::new(&config)?;
        let plans = config.billing.plans.clone();
        let usage_writer = UsageWriter::spawn(store.clone(), plans.clone());
        Ok(App {
            jwt,
            hasher,
            plans,
            payments,
            rate_limits,
            mailer,
            auth_cache: AuthCache::with_refresh_wait(config.auth.state_refresh_wait),
            last_used: LastUsed::default(),
            metrics,
            usage_writer,
            clock: Clock::default(),
            audit_queue: AuditQueue::default(),
            store,
            config,
        })
    }
}
