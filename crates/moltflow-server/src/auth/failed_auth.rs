//! The failed-authentication throttle (API.md §3): per client network (IPv4 address or IPv6 /64),
//! at most 100 credentials a minute that fail. A credential this node does not already know to
//! be valid is charged before it is looked up (and refunded when it is valid), so guessing keys
//! costs the database at most 100 lookups a minute per network; once the budget is spent such
//! credentials get `429` without a lookup, while known-valid ones keep working.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moltflow_core::failure_budget::{Charge, FailureBudget, FailurePolicy};

use super::throttle::client_network;

pub struct FailedAuthThrottle {
    policy: Option<FailurePolicy>,
    budgets: moka::sync::Cache<IpAddr, Arc<Mutex<FailureBudget>>>,
}

/// A failure charged to a network, before the credential is looked up.
pub struct Charged {
    network: IpAddr,
    charge: Charge,
}

impl FailedAuthThrottle {
    /// 100 failures a minute times `scale`; off at 0.
    pub fn new(scale: f64) -> FailedAuthThrottle {
        let policy = FailurePolicy::scaled(scale);
        let window = policy.unwrap_or(FailurePolicy::DEFAULT).window_ms;
        FailedAuthThrottle {
            policy,
            // A budget left alone for a window is full again: nothing is lost by forgetting it.
            // At most ~800 bytes each (100 times), so the cache stays under ~100 MB.
            budgets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_millis(window as u64))
                .build(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.policy.is_some()
    }

    fn budget(&self, network: IpAddr) -> Arc<Mutex<FailureBudget>> {
        self.budgets.get_with(network, || Arc::new(Mutex::new(FailureBudget::default())))
    }

    /// Charges a failure to `ip`'s network before an unknown credential is looked up;
    /// `Err(seconds)` when the network has no failures left. Nothing to charge without an IP or
    /// with the throttle off.
    pub fn charge(&self, ip: Option<IpAddr>, now: i64) -> Result<Option<Charged>, u64> {
        let (Some(policy), Some(ip)) = (&self.policy, ip) else { return Ok(None) };
        let network = client_network(ip);
        let budget = self.budget(network);
        let mut budget = budget.lock().unwrap_or_else(|p| p.into_inner());
        match budget.charge(now, policy) {
            Ok(charge) => Ok(Some(Charged { network, charge })),
            Err(throttled) => {
                metrics::counter!("moltflow_auth_failures_throttled_total").increment(1);
                Err(throttled.retry_after_secs())
            }
        }
    }

    /// The charged credential was valid (or could not be checked): the failure is given back.
    pub fn refund(&self, charged: Charged) {
        if let Some(budget) = self.budgets.get(&charged.network) {
            budget.lock().unwrap_or_else(|p| p.into_inner()).refund(charged.charge);
        }
    }

    /// A credential known valid failed after all (revoked, expired): it counts too.
    pub fn record(&self, ip: Option<IpAddr>, now: i64) {
        let (Some(policy), Some(ip)) = (&self.policy, ip) else { return };
        let budget = self.budget(client_network(ip));
        budget.lock().unwrap_or_else(|p| p.into_inner()).record(now, policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn a_network_gets_a_hundred_failures_a_minute() {
        let t = FailedAuthThrottle::new(1.0);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        for i in 0..100 {
            assert!(t.charge(ip(&format!("2001:db8:0:1::{i:x}")), T0).unwrap().is_some());
        }
        assert_eq!(t.charge(ip("2001:db8:0:1:ffff::1"), T0).err(), Some(60), "same /64");
        assert!(t.charge(ip("2001:db8:0:2::1"), T0).is_ok(), "another /64");
        assert!(t.charge(ip("2001:db8:0:1::1"), T0 + 60_000).is_ok(), "a minute later");
    }

    #[test]
    fn refunded_charges_do_not_count() {
        let t = FailedAuthThrottle::new(1.0);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..500 {
            let charged = t.charge(ip, T0).unwrap().unwrap();
            t.refund(charged);
        }
        assert!(t.charge(ip, T0).is_ok());
    }

    #[test]
    fn off_at_scale_zero() {
        let t = FailedAuthThrottle::new(0.0);
        assert!(!t.is_enabled());
        for _ in 0..500 {
            assert!(t.charge(Some(IpAddr::from([10, 0, 0, 1])), T0).unwrap().is_none());
        }
    }
}
