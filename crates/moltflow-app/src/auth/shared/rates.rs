//! Request rates shared by every node: per principal (API.md §9) and per client network (§3),
//! one GCRA state per key in Redis. While Redis is unreachable each falls back to its per-node
//! twin, which answers with the same headers.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Gcra, SharedStore, hashed};
use crate::auth::rate_limit::{Decision, MemoryPrincipalRates, PlanLimits, PrincipalRates, allowed, refused};
use crate::auth::throttle::{IpLimiter, IpRates, client_network};

const MINUTE_MS: i64 = moltflow_core::clock::MINUTE_MS;

/// Per-principal rates in Redis: `<prefix>rate:<plan>:<principal id>` (user and key ids are not
/// secrets).
pub struct SharedPrincipalRates {
    store: Arc<SharedStore>,
    limits: PlanLimits,
    fallback: MemoryPrincipalRates,
}

impl SharedPrincipalRates {
    pub fn new(store: Arc<SharedStore>, rates: &[(String, u32)], scale: f64) -> SharedPrincipalRates {
        SharedPrincipalRates {
            store,
            limits: PlanLimits::new(rates, scale),
            fallback: MemoryPrincipalRates::new(rates, scale),
        }
    }
}

impl PrincipalRates for SharedPrincipalRates {
    async fn check(&self, principal: &String, plan: &str, now: i64) -> Option<Decision> {
        let limit = self.limits.of(plan)?;
        // The key names the limit, not the plan: plans of one rate share nothing anyway, and a
        // plan renamed in the catalogue keeps its counts.
        let key = self.store.key(&format!("rate:{limit}"), principal);
        match self.store.gcra(&key, limit, MINUTE_MS, now).await {
            Some(Gcra::Allowed { remaining }) => Some(Ok(allowed(limit, remaining))),
            Some(Gcra::Refused { wait_us }) => Some(Err(refused(limit, Duration::from_micros(wait_us)))),
            None => self.fallback.check_now(principal, plan),
        }
    }

    fn sweep(&self) {
        self.fallback.sweep();
    }
}

/// The per-network rate of one route in Redis: `<prefix>ip:<route>:<hash of the network>`.
pub struct SharedIpRates {
    store: Arc<SharedStore>,
    route: &'static str,
    fallback: IpLimiter,
}

impl SharedIpRates {
    /// `route` names the limit in keys (`login`, `register`, …).
    pub fn new(store: Arc<SharedStore>, route: &'static str, fallback: IpLimiter) -> SharedIpRates {
        SharedIpRates { store, route, fallback }
    }
}

impl IpRates for SharedIpRates {
    async fn check(&self, ip: Option<IpAddr>, now: i64) -> Result<(), u64> {
        let (Some(limit), Some(ip)) = (self.fallback.limit(), ip) else { return Ok(()) };
        let key = self.store.key(&format!("ip:{}", self.route), &hashed(&client_network(ip).to_string()));
        match self.store.gcra(&key, limit, MINUTE_MS, now).await {
            Some(Gcra::Allowed { .. }) => Ok(()),
            // Whole seconds rounded down, at least 1: what the per-node limiter answers.
            Some(Gcra::Refused { wait_us }) => Err((wait_us / 1_000_000).max(1)),
            None => self.fallback.check_now(Some(ip)),
        }
    }

    fn sweep(&self) {
        self.fallback.sweep();
    }
}
