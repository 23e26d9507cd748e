//! Per-principal request rates by plan (API.md §9): governor GCRA limiters keyed by the user or
//! key id, one limiter per distinct rate. The decision of a request travels to the response
//! headers through a task-local set up by the `observe` middleware.

use std::cell::Cell;
use std::collections::HashMap;
use std::num::NonZeroU32;

use axum::http::{HeaderMap, HeaderValue};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter, clock::Clock, clock::DefaultClock};

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

pub struct PrincipalLimiter {
    /// Plan → (limit per minute, limiter); None when limits are off.
    by_plan: Option<HashMap<String, (u32, Limiter)>>,
    default_plan: String,
}

impl PrincipalLimiter {
    pub fn new(rates: &[(String, u32)], scale: f64) -> PrincipalLimiter {
        if scale <= 0.0 {
            return PrincipalLimiter { by_plan: None, default_plan: "free".into() };
        }
        let by_plan = rates
            .iter()
            .map(|(plan, per_minute)| {
                let scaled = ((*per_minute as f64) * scale).round().clamp(1.0, u32::MAX as f64) as u32;
                let n = NonZeroU32::new(scaled).unwrap_or(NonZeroU32::MIN);
                let limiter = RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>();
                (plan.clone(), (scaled, limiter))
            })
            .collect();
        PrincipalLimiter { by_plan: Some(by_plan), default_plan: "free".into() }
    }

    /// Counts one request of `principal` on `plan`: `Err` carries the wait in seconds.
    pub fn check(&self, principal: &String, plan: &str) -> Option<Result<RateInfo, (RateInfo, u64)>> {
        let by_plan = self.by_plan.as_ref()?;
        let (limit, limiter) = by_plan.get(plan).or_else(|| by_plan.get(&self.default_plan))?;
        let per_token = 60.0 / *limit as f64;
        Some(match limiter.check_key(principal) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = ((limit - remaining.min(*limit)) as f64 * per_token).ceil() as u64;
                Ok(RateInfo { limit: *limit, remaining, reset })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now()).as_secs_f64().ceil().max(1.0) as u64;
                Err((RateInfo { limit: *limit, remaining: 0, reset: (*limit as f64 * per_token).ceil() as u64 }, wait))
            }
        })
    }

    pub fn sweep(&self) {
        if let Some(by_plan) = &self.by_plan {
            for (_, limiter) in by_plan.values() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

tokio::task_local! {
    static DECISION: Cell<Option<RateInfo>>;
}

/// Runs a request with room for its rate decision.
pub async fn scope<F: std::future::Future>(fut: F) -> F::Output {
    DECISION.scope(Cell::new(None), fut).await
}

/// Called by the authenticating extractor.
pub fn record(info: RateInfo) {
    let _ = DECISION.try_with(|d| d.set(Some(info)));
}

/// Adds `RateLimit-*` headers for the decision recorded during the request, if any.
pub fn apply_headers(headers: &mut HeaderMap) {
    if let Ok(Some(info)) = DECISION.try_with(Cell::get) {
        headers.insert("ratelimit-limit", HeaderValue::from(info.limit));
        headers.insert("ratelimit-remaining", HeaderValue::from(info.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(info.reset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Vec<(String, u32)> {
        PLAN_RATES.iter().map(|(p, n)| (p.to_string(), *n)).collect()
    }

    #[test]
    fn free_plan_allows_sixty_then_refuses() {
        let l = PrincipalLimiter::new(&rates(), 1.0);
        let who = "user-1".to_owned();
        for i in 0..60 {
            let info = l.check(&who, "free").unwrap().unwrap();
            assert_eq!(info.limit, 60);
            assert_eq!(info.remaining, 59 - i);
        }
        let (_, wait) = l.check(&who, "free").unwrap().unwrap_err();
        assert!(wait >= 1);
        assert!(l.check(&"user-2".to_owned(), "free").unwrap().is_ok());
    }

    #[test]
    fn plans_have_their_rates_and_scale_zero_is_off() {
        let l = PrincipalLimiter::new(&rates(), 1.0);
        assert_eq!(l.check(&"k".to_owned(), "business").unwrap().unwrap().limit, 3000);
        assert_eq!(l.check(&"k2".to_owned(), "unknown-plan").unwrap().unwrap().limit, 60);
        assert!(PrincipalLimiter::new(&rates(), 0.0).check(&"k".to_owned(), "free").is_none());
        assert_eq!(PrincipalLimiter::new(&rates(), 2.0).check(&"k".to_owned(), "free").unwrap().unwrap().limit, 120);
    }
}
