//! The per-account sign-in lockout (API.md §3): the state machine of `moltflow_core::lockout`
//! kept in a [`LockoutStore`], this node's memory or Redis shared by every node
//! (`auth::shared::logs`), chosen at start-up. Every password check of an account (login, and the current
//! password of `set-password` and `DELETE /users/me`) reserves its place first, so at most five
//! wrong passwords per account are ever checked in 15 minutes, concurrent bursts included.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moltflow_core::lockout::{Locked, LockoutPolicy, LockoutState, Reservation};

use super::store::Chosen;

/// Where lockout states live. Each operation is atomic for its key. The in-memory store counts
/// per node; the Redis one runs the same steps in one script for every node.
pub trait LockoutStore: Send + Sync {
    /// What a reservation leaves to give back.
    type Ticket: Send;

    /// Applies the time step, then reserves a check or refuses it.
    fn reserve(
        &self,
        key: &str,
        now: i64,
        policy: &LockoutPolicy,
    ) -> impl Future<Output = Result<Self::Ticket, Locked>> + Send;

    /// Gives back a reservation whose password was never checked.
    fn release(&self, key: &str, ticket: Self::Ticket) -> impl Future<Output = ()> + Send;

    /// A right password: the count of `key` starts again.
    fn clear(&self, key: &str) -> impl Future<Output = ()> + Send;
}

/// The store the service uses: per node, or shared when Redis is configured.
pub type Lockouts = Chosen<MemoryLockouts, super::shared::logs::SharedLockouts>;

impl<M: LockoutStore, R: LockoutStore> LockoutStore for Chosen<M, R> {
    type Ticket = Chosen<M::Ticket, R::Ticket>;

    async fn reserve(&self, key: &str, now: i64, policy: &LockoutPolicy) -> Result<Self::Ticket, Locked> {
        match self {
            Chosen::PerNode(m) => m.reserve(key, now, policy).await.map(Chosen::PerNode),
            Chosen::Shared(r) => r.reserve(key, now, policy).await.map(Chosen::Shared),
        }
    }

    async fn release(&self, key: &str, ticket: Self::Ticket) {
        match (self, ticket) {
            (Chosen::PerNode(m), Chosen::PerNode(t)) => m.release(key, t).await,
            (Chosen::Shared(r), Chosen::Shared(t)) => r.release(key, t).await,
            // The store is chosen once: a ticket always comes back to the store that issued it.
            _ => {}
        }
    }

    async fn clear(&self, key: &str) {
        match self {
            Chosen::PerNode(m) => m.clear(key).await,
            Chosen::Shared(r) => r.clear(key).await,
        }
    }
}

/// Lockout states in this node's memory, forgotten after a window without attempts.
pub struct MemoryLockouts {
    states: moka::sync::Cache<String, Arc<Mutex<LockoutState>>>,
}

impl MemoryLockouts {
    pub fn new(window: Duration) -> MemoryLockouts {
        MemoryLockouts { states: moka::sync::Cache::builder().max_capacity(1_000_000).time_to_idle(window).build() }
    }

    /// Kept for the window of `policy` (the default's when the lockout is off).
    pub fn for_policy(policy: Option<LockoutPolicy>) -> MemoryLockouts {
        MemoryLockouts::new(Duration::from_millis(policy.unwrap_or(LockoutPolicy::DEFAULT).window_ms as u64))
    }

    fn with_state<T>(&self, key: &str, f: impl FnOnce(&mut LockoutState) -> T) -> Option<T> {
        let state = self.states.get(key)?;
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut state))
    }
}

impl LockoutStore for MemoryLockouts {
    type Ticket = Reservation;

    async fn reserve(&self, key: &str, now: i64, policy: &LockoutPolicy) -> Result<Reservation, Locked> {
        let state = self.states.get_with_by_ref(key, || Arc::new(Mutex::new(LockoutState::default())));
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        state.reserve(now, policy)
    }

    async fn release(&self, key: &str, reservation: Reservation) {
        self.with_state(key, |s| s.release(reservation));
    }

    async fn clear(&self, key: &str) {
        // The entry stays (a reservation may hold it right now); an empty state is cheap.
        self.with_state(key, LockoutState::succeed);
    }
}

/// The lockout with its policy (`None`: turned off by `MOLTFLOW_RATE_LIMIT_SCALE=0`).
pub struct LoginLockout<S: LockoutStore = Lockouts> {
    policy: Option<LockoutPolicy>,
    store: S,
}

impl LoginLockout<MemoryLockouts> {
    /// Counted in this node's memory.
    pub fn per_node(scale: f64) -> LoginLockout<MemoryLockouts> {
        let policy = LockoutPolicy::scaled(scale);
        LoginLockout { policy, store: MemoryLockouts::for_policy(policy) }
    }
}

impl LoginLockout {
    /// Shared through Redis when `shared` is given, per node otherwise.
    pub fn new(scale: f64, shared: Option<std::sync::Arc<super::shared::SharedStore>>) -> LoginLockout {
        let policy = LockoutPolicy::scaled(scale);
        let per_node = MemoryLockouts::for_policy(policy);
        let store = match shared {
            Some(shared) => Chosen::Shared(super::shared::logs::SharedLockouts::new(shared, per_node)),
            None => Chosen::PerNode(per_node),
        };
        LoginLockout { policy, store }
    }
}

/// A counted password check of one account: [`CheckPermit::passed`] after a right password,
/// [`CheckPermit::failed`] after a wrong one, [`CheckPermit::unused`] when the check never ran.
#[must_use = "say how the check ended"]
pub struct CheckPermit<'a, S: LockoutStore> {
    lockout: &'a LoginLockout<S>,
    key: &'a str,
    reservation: Option<S::Ticket>,
}

impl<S: LockoutStore> LoginLockout<S> {
    /// Counts a password check of the account `key` before it runs; `Err(seconds)` while the
    /// account is locked.
    pub async fn reserve<'a>(&'a self, key: &'a str, now: i64) -> Result<CheckPermit<'a, S>, u64> {
        let reservation = match &self.policy {
            Some(policy) => Some(self.store.reserve(key, now, policy).await.map_err(|l| l.retry_after_secs())?),
            None => None,
        };
        Ok(CheckPermit { lockout: self, key, reservation })
    }

    /// Clears the count of `key` (a password reset proved the mailbox).
    pub async fn clear(&self, key: &str) {
        if self.policy.is_some() {
            self.store.clear(key).await;
        }
    }
}

impl<S: LockoutStore> CheckPermit<'_, S> {
    pub async fn passed(self) {
        self.lockout.clear(self.key).await;
    }

    /// The reservation stays counted.
    pub fn failed(self) {}

    pub async fn unused(self) {
        if let Some(r) = self.reservation {
            self.lockout.store.release(self.key, r).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[tokio::test]
    async fn five_checks_then_locked_for_the_rest_of_the_window() {
        let l = LoginLockout::per_node(1.0);
        for _ in 0..5 {
            l.reserve("a@b.co", T0).await.unwrap().failed();
        }
        let wait = l.reserve("a@b.co", T0 + 100_000).await.err().unwrap();
        assert_eq!(wait, 800);
        l.reserve("c@d.co", T0).await.expect("another account is not locked").failed();
        assert!(l.reserve("a@b.co", T0 + 900_000).await.is_ok());
    }

    #[tokio::test]
    async fn a_pass_clears_and_an_unused_check_gives_its_place_back() {
        let l = LoginLockout::per_node(1.0);
        for _ in 0..4 {
            l.reserve("a@b.co", T0).await.unwrap().failed();
        }
        l.reserve("a@b.co", T0).await.unwrap().unused().await;
        l.reserve("a@b.co", T0).await.unwrap().passed().await;
        for _ in 0..5 {
            l.reserve("a@b.co", T0).await.unwrap().failed();
        }
        assert!(l.reserve("a@b.co", T0).await.is_err());
    }

    #[tokio::test]
    async fn scale_zero_turns_the_lockout_off() {
        let l = LoginLockout::per_node(0.0);
        for _ in 0..50 {
            l.reserve("a@b.co", T0).await.unwrap().failed();
        }
    }
}
