//! The per-account sign-in lockout (API.md §3): the state machine of `moltflow_core::lockout`
//! kept in a [`LockoutStore`]. Every password check of an account (login, and the current
//! password of `set-password` and `DELETE /users/me`) reserves its place first, so at most five
//! wrong passwords per account are ever checked in 15 minutes, concurrent bursts included.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moltflow_core::lockout::{Locked, LockoutPolicy, LockoutState, Reservation};

/// Where lockout states live. Each operation is atomic for its key. The in-memory store counts
/// per node; a store shared by every node (Redis, running the same steps in one script) plugs in
/// here without changing the callers.
pub trait LockoutStore: Send + Sync {
    /// Applies the time step, then reserves a check or refuses it.
    fn reserve(
        &self,
        key: &str,
        now: i64,
        policy: &LockoutPolicy,
    ) -> impl Future<Output = Result<Reservation, Locked>> + Send;

    /// Gives back a reservation whose password was never checked.
    fn release(&self, key: &str, reservation: Reservation) -> impl Future<Output = ()> + Send;

    /// A right password: the count of `key` starts again.
    fn clear(&self, key: &str) -> impl Future<Output = ()> + Send;
}

/// Lockout states in this node's memory, forgotten after a window without attempts.
pub struct MemoryLockouts {
    states: moka::sync::Cache<String, Arc<Mutex<LockoutState>>>,
}

impl MemoryLockouts {
    pub fn new(window: Duration) -> MemoryLockouts {
        MemoryLockouts { states: moka::sync::Cache::builder().max_capacity(1_000_000).time_to_idle(window).build() }
    }

    fn with_state<T>(&self, key: &str, f: impl FnOnce(&mut LockoutState) -> T) -> Option<T> {
        let state = self.states.get(key)?;
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut state))
    }
}

impl LockoutStore for MemoryLockouts {
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
pub struct LoginLockout<S: LockoutStore = MemoryLockouts> {
    policy: Option<LockoutPolicy>,
    store: S,
}

impl LoginLockout {
    pub fn new(scale: f64) -> LoginLockout {
        let policy = LockoutPolicy::scaled(scale);
        let window = policy.unwrap_or(LockoutPolicy::DEFAULT).window_ms;
        LoginLockout { policy, store: MemoryLockouts::new(Duration::from_millis(window as u64)) }
    }
}

/// A counted password check of one account: [`CheckPermit::passed`] after a right password,
/// [`CheckPermit::failed`] after a wrong one, [`CheckPermit::unused`] when the check never ran.
#[must_use = "say how the check ended"]
pub struct CheckPermit<'a, S: LockoutStore> {
    lockout: &'a LoginLockout<S>,
    key: &'a str,
    reservation: Option<Reservation>,
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
        let l = LoginLockout::new(1.0);
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
        let l = LoginLockout::new(1.0);
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
        let l = LoginLockout::new(0.0);
        for _ in 0..50 {
            l.reserve("a@b.co", T0).await.unwrap().failed();
        }
    }
}
