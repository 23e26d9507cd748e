//! Per-principal request rates by plan (API.md §9), keyed by the user or key id. Counted by a
//! [`PrincipalRates`]: this node's memory ([`MemoryPrincipalRates`], governor GCRA limiters, one
//! per distinct rate) or Redis shared by every node (`auth::shared::rates`), chosen at start-up.
//! The decision of a request travels to the response headers in the request's context
//! (`request_context`), set up by the `Observe` middleware.

use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter, clock::Clock, clock::DefaultClock};

use super::store::Chosen;

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Requests a minute per principal for each plan, before scaling.
pub const PLAN_RATES: &[(&str, u32)] = &[("free", 60), ("starter", 300), ("pro", 600), ("business", 3000)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the allowance is full again.
    pub reset: u64,
}

/// Counted (`Ok`) or refused with the seconds to wait (`Err`).
pub type Decision = Result<RateInfo, (RateInfo, u64)>;

/// Where per-principal rates are counted.
pub trait PrincipalRates: Send + Sync {
    /// Counts one request of `principal` on `plan` at `now` (milliseconds, the service clock);
    /// `None` when limits are off.
    // `&String`: governor's keyed limiter looks keys up by `&String`, so no copy per request.
    #[allow(clippy::ptr_arg)]
    fn check(&self, principal: &String, plan: &str, now: i64) -> impl Future<Output = Option<Decision>> + Send;

    /// Drops per-node state that has gone back to a full allowance.
    fn sweep(&self);
}

/// The per-minute limit of each plan, scaled; `None` when limits are off.
pub struct PlanLimits {
    by_plan: Option<HashMap<String, u32>>,
}

impl PlanLimits {
    pub fn new(rates: &[(String, u32)], scale: f64) -> PlanLimits {
        let by_plan = (scale > 0.0).then(|| {
            rates
                .iter()
                .map(|(plan, per_minute)| {
                    (plan.clone(), ((*per_minute as f64) * scale).round().clamp(1.0, u32::MAX as f64) as u32)
                })
                .collect()
        });
        PlanLimits { by_plan }
    }

    /// The limit of `plan`, or of the free plan for a plan without one.
    pub fn of(&self, plan: &str) -> Option<u32> {
        let by_plan = self.by_plan.as_ref()?;
        by_plan.get(plan).or_else(|| by_plan.get("free")).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &u32)> {
        self.by_plan.iter().flatten()
    }
}

/// The headers of a counted request: `remaining` more may follow at once.
pub fn allowed(limit: u32, remaining: u32) -> RateInfo {
    let per_token = 60.0 / limit as f64;
    let reset = ((limit - remaining.min(limit)) as f64 * per_token).ceil() as u64;
    RateInfo { limit, remaining, reset }
}

/// The headers and `Retry-After` (whole seconds, at least 1) of a refused request.
pub fn refused(limit: u32, wait: std::time::Duration) -> (RateInfo, u64) {
    let per_token = 60.0 / limit as f64;
    let wait = wait.as_secs_f64().ceil().max(1.0) as u64;
    (RateInfo { limit, remaining: 0, reset: (limit as f64 * per_token).ceil() as u64 }, wait)
}

/// Per-principal rates in this node's memory.
pub struct MemoryPrincipalRates {
    /// Plan → (limit per minute, limiter); None when limits are off.
    by_plan: Option<HashMap<String, (u32, Limiter)>>,
    default_plan: String,
}

impl MemoryPrincipalRates {
    pub fn new(rates: &[(String, u32)], scale: f64) -> MemoryPrincipalRates {
        let limits = PlanLimits::new(rates, scale);
        let by_plan = limits.by_plan.as_ref().map(|by_plan| {
            by_plan
                .iter()
                .map(|(plan, scaled)| {
                    let n = NonZeroU32::new(*scaled).unwrap_or(NonZeroU32::MIN);
                    let limiter =
                        RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>();
                    (plan.clone(), (*scaled, limiter))
                })
                .collect()
        });
        MemoryPrincipalRates { by_plan, default_plan: "free".into() }
    }

    /// Counts one request of `principal` on `plan`: `Err` carries the wait in seconds.
    pub fn check_now(&self, principal: &String, plan: &str) -> Option<Decision> {
        let by_plan = self.by_plan.as_ref()?;
        let (limit, limiter) = by_plan.get(plan).or_else(|| by_plan.get(&self.default_plan))?;
        Some(match limiter.check_key(principal) {
            Ok(snapshot) => Ok(allowed(*limit, snapshot.remaining_burst_capacity())),
            Err(not_until) => Err(refused(*limit, not_until.wait_time_from(DefaultClock::default().now()))),
        })
    }
}

impl PrincipalRates for MemoryPrincipalRates {
    /// Governor reads its own monotonic clock; `now` is for the shared store.
    async fn check(&self, principal: &String, plan: &str, _now: i64) -> Option<Decision> {
        self.check_now(principal, plan)
    }

    fn sweep(&self) {
        if let Some(by_plan) = &self.by_plan {
            for (_, limiter) in by_plan.values() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

impl<M: PrincipalRates, R: PrincipalRates> PrincipalRates for Chosen<M, R> {
    async fn check(&self, principal: &String, plan: &str, now: i64) -> Option<Decision> {
        match self {
            Chosen::PerNode(m) => m.check(principal, plan, now).await,
            Chosen::Shared(r) => r.check(principal, plan, now).await,
        }
    }

    fn sweep(&self) {
        match self {
            Chosen::PerNode(m) => m.sweep(),
            Chosen::Shared(r) => r.sweep(),
        }
    }
}

/// The limiter the service uses: per node, or shared when Redis is configured.
pub type PrincipalLimiter = Chosen<MemoryPrincipalRates, super::shared::rates::SharedPrincipalRates>;

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Vec<(String, u32)> {
        PLAN_RATES.iter().map(|(p, n)| (p.to_string(), *n)).collect()
    }

    #[test]
    fn free_plan_allows_sixty_then_refuses() {
        let l = MemoryPrincipalRates::new(&rates(), 1.0);
        let who = "user-1".to_owned();
        for i in 0..60 {
            let info = l.check_now(&who, "free").unwrap().unwrap();
            assert_eq!(info.limit, 60);
            assert_eq!(info.remaining, 59 - i);
        }
        let (_, wait) = l.check_now(&who, "free").unwrap().unwrap_err();
        assert!(wait >= 1);
        assert!(l.check_now(&"user-2".to_owned(), "free").unwrap().is_ok());
    }

    #[test]
    fn plans_have_their_rates_and_scale_zero_is_off() {
        let l = MemoryPrincipalRates::new(&rates(), 1.0);
        assert_eq!(l.check_now(&"k".to_owned(), "business").unwrap().unwrap().limit, 3000);
        assert_eq!(l.check_now(&"k2".to_owned(), "unknown-plan").unwrap().unwrap().limit, 60);
        assert!(MemoryPrincipalRates::new(&rates(), 0.0).check_now(&"k".to_owned(), "free").is_none());
        let doubled = MemoryPrincipalRates::new(&rates(), 2.0);
        assert_eq!(doubled.check_now(&"k".to_owned(), "free").unwrap().unwrap().limit, 120);
    }
}
