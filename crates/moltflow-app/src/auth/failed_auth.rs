//! The failed-authentication throttle (API.md §3): per client network (IPv4 address or IPv6 /64),
//! at most 100 credentials a minute that fail. A credential this node does not already know to
//! be valid is charged before it is looked up (and refunded when it is valid), so guessing keys
//! costs the database at most 100 lookups a minute per network; once the budget is spent such
//! credentials get `429` without a lookup, while known-valid ones keep working. The budgets live in
//! a [`FailureStore`]: this node's memory, or Redis shared by every node (`auth::shared::logs`).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moltflow_core::failure_budget::{Charge, FailureBudget, FailurePolicy, Throttled};

use super::store::Chosen;
use super::throttle::client_network;

/// Where failure budgets live, per client network. Each operation is atomic for its network.
pub trait FailureStore: Send + Sync {
    /// What a charge leaves to refund.
    type Ticket: Send;

    /// Counts a failure in advance, or refuses when the window's failures are used up.
    fn charge(
        &self,
        network: IpAddr,
        now: i64,
        policy: &FailurePolicy,
    ) -> impl Future<Output = Result<Self::Ticket, Throttled>> + Send;

    /// The charged credential was valid after all.
    fn refund(&self, network: IpAddr, ticket: Self::Ticket) -> impl Future<Output = ()> + Send;

    /// Counts a failure that was not charged in advance.
    fn record(&self, network: IpAddr, now: i64, policy: &FailurePolicy) -> impl Future<Output = ()> + Send;
}

/// The store the service uses: per node, or shared when Redis is configured.
pub type Failures = Chosen<MemoryFailures, super::shared::logs::SharedFailures>;

impl<M: FailureStore, R: FailureStore> FailureStore for Chosen<M, R> {
    type Ticket = Chosen<M::Ticket, R::Ticket>;

    async fn charge(&self, network: IpAddr, now: i64, policy: &FailurePolicy) -> Result<Self::Ticket, Throttled> {
        match self {
            Chosen::PerNode(m) => m.charge(network, now, policy).await.map(Chosen::PerNode),
            Chosen::Shared(r) => r.charge(network, now, policy).await.map(Chosen::Shared),
        }
    }

    async fn refund(&self, network: IpAddr, ticket: Self::Ticket) {
        match (self, ticket) {
            (Chosen::PerNode(m), Chosen::PerNode(t)) => m.refund(network, t).await,
            (Chosen::Shared(r), Chosen::Shared(t)) => r.refund(network, t).await,
            // The store is chosen once: a ticket always comes back to the store that issued it.
            _ => {}
        }
    }

    async fn record(&self, network: IpAddr, now: i64, policy: &FailurePolicy) {
        match self {
            Chosen::PerNode(m) => m.record(network, now, policy).await,
            Chosen::Shared(r) => r.record(network, now, policy).await,
        }
    }
}

/// Failure budgets in this node's memory.
pub struct MemoryFailures {
    budgets: moka::sync::Cache<IpAddr, Arc<Mutex<FailureBudget>>>,
}

impl MemoryFailures {
    pub fn for_policy(policy: Option<FailurePolicy>) -> MemoryFailures {
        let window = policy.unwrap_or(FailurePolicy::DEFAULT).window_ms;
        MemoryFailures {
            // A budget left alone for a window is full again: nothing is lost by forgetting it.
            // At most ~800 bytes each (100 times), so the cache stays under ~100 MB.
            budgets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_millis(window as u64))
                .build(),
        }
    }

    fn budget(&self, network: IpAddr) -> Arc<Mutex<FailureBudget>> {
        self.budgets.get_with(network, || Arc::new(Mutex::new(FailureBudget::default())))
    }
}

impl FailureStore for MemoryFailures {
    type Ticket = Charge;

    async fn charge(&self, network: IpAddr, now: i64, policy: &FailurePolicy) -> Result<Charge, Throttled> {
        let budget = self.budget(network);
        let mut budget = budget.lock().unwrap_or_else(|p| p.into_inner());
        budget.charge(now, policy)
    }

    async fn refund(&self, network: IpAddr, charge: Charge) {
        if let Some(budget) = self.budgets.get(&network) {
            budget.lock().unwrap_or_else(|p| p.into_inner()).refund(charge);
        }
    }

    async fn record(&self, network: IpAddr, now: i64, policy: &FailurePolicy) {
        let budget = self.budget(network);
        budget.lock().unwrap_or_else(|p| p.into_inner()).record(now, policy);
    }
}

pub struct FailedAuthThrottle<S: FailureStore = Failures> {
    policy: Option<FailurePolicy>,
    store: S,
}

/// A failure charged to a network, before the credential is looked up.
pub struct Charged<T> {
    network: IpAddr,
    ticket: T,
}

impl FailedAuthThrottle<MemoryFailures> {
    /// 100 failures a minute times `scale` (off at 0), counted in this node's memory.
    pub fn per_node(scale: f64) -> FailedAuthThrottle<MemoryFailures> {
        let policy = FailurePolicy::scaled(scale);
        FailedAuthThrottle { policy, store: MemoryFailures::for_policy(policy) }
    }
}

impl FailedAuthThrottle {
    /// 100 failures a minute times `scale` (off at 0); shared through Redis when `shared` is given.
    pub fn new(scale: f64, shared: Option<Arc<super::shared::SharedStore>>) -> FailedAuthThrottle {
        let policy = FailurePolicy::scaled(scale);
        let per_node = MemoryFailures::for_policy(policy);
        let store = match shared {
            Some(shared) => Chosen::Shared(super::shared::logs::SharedFailures::new(shared, per_node)),
            None => Chosen::PerNode(per_node),
        };
        FailedAuthThrottle { policy, store }
    }
}

impl<S: FailureStore> FailedAuthThrottle<S> {
    pub fn is_enabled(&self) -> bool {
        self.policy.is_some()
    }

    /// Charges a failure to `ip`'s network before an unknown credential is looked up;
    /// `Err(seconds)` when the network has no failures left. Nothing to charge without an IP or
    /// with the throttle off.
    pub async fn charge(&self, ip: Option<IpAddr>, now: i64) -> Result<Option<Charged<S::Ticket>>, u64> {
        let (Some(policy), Some(ip)) = (&self.policy, ip) else { return Ok(None) };
        let network = client_network(ip);
        match self.store.charge(network, now, policy).await {
            Ok(ticket) => Ok(Some(Charged { network, ticket })),
            Err(throttled) => {
                metrics::counter!("moltflow_auth_failures_throttled_total").increment(1);
                Err(throttled.retry_after_secs())
            }
        }
    }

    /// The charged credential was valid (or could not be checked): the failure is given back.
    pub async fn refund(&self, charged: Charged<S::Ticket>) {
        self.store.refund(charged.network, charged.ticket).await;
    }

    /// A credential known valid failed after all (revoked, expired): it counts too.
    pub async fn record(&self, ip: Option<IpAddr>, now: i64) {
        let (Some(policy), Some(ip)) = (&self.policy, ip) else { return };
        self.store.record(client_network(ip), now, policy).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[tokio::test]
    async fn a_network_gets_a_hundred_failures_a_minute() {
        let t = FailedAuthThrottle::per_node(1.0);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        for i in 0..100 {
            assert!(t.charge(ip(&format!("2001:db8:0:1::{i:x}")), T0).await.unwrap().is_some());
        }
        assert_eq!(t.charge(ip("2001:db8:0:1:ffff::1"), T0).await.err(), Some(60), "same /64");
        assert!(t.charge(ip("2001:db8:0:2::1"), T0).await.is_ok(), "another /64");
        assert!(t.charge(ip("2001:db8:0:1::1"), T0 + 60_000).await.is_ok(), "a minute later");
    }

    #[tokio::test]
    async fn refunded_charges_do_not_count() {
        let t = FailedAuthThrottle::per_node(1.0);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..500 {
            let charged = t.charge(ip, T0).await.unwrap().unwrap();
            t.refund(charged).await;
        }
        assert!(t.charge(ip, T0).await.is_ok());
    }

    #[tokio::test]
    async fn off_at_scale_zero() {
        let t = FailedAuthThrottle::per_node(0.0);
        assert!(!t.is_enabled());
        for _ in 0..500 {
            assert!(t.charge(Some(IpAddr::from([10, 0, 0, 1])), T0).await.unwrap().is_none());
        }
    }
}
