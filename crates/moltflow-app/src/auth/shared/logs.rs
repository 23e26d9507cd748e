//! Sliding logs shared by every node: the sign-in lockout per account and the failed-
//! authentication budget per client network (API.md §3), each a sorted set in Redis updated by
//! `sliding_log.lua` with the steps of `moltflow_core::lockout` and `failure_budget`. Keys hold a
//! hash of the email or network, never the value itself. While Redis is unreachable both count in
//! this node's memory; a reservation is always given back to the store that made it.

use std::net::IpAddr;
use std::sync::Arc;

use moltflow_core::failure_budget::{FailurePolicy, Throttled};
use moltflow_core::lockout::{Locked, LockoutPolicy};

use super::{LogEntry, SharedStore, hashed, unique_member};
use crate::auth::failed_auth::{FailureStore, MemoryFailures};
use crate::auth::lockout::{LockoutStore, MemoryLockouts};

/// A reservation in Redis (its member) or, made during an outage, in this node's memory.
pub enum Ticket<L> {
    Shared(String),
    PerNode(L),
}

/// Lockouts in Redis: `<prefix>lockout:<hash of the normalised email>`.
pub struct SharedLockouts {
    store: Arc<SharedStore>,
    fallback: MemoryLockouts,
}

impl SharedLockouts {
    pub fn new(store: Arc<SharedStore>, fallback: MemoryLockouts) -> SharedLockouts {
        SharedLockouts { store, fallback }
    }

    fn key(&self, account: &str) -> String {
        self.store.key("lockout", &hashed(account))
    }
}

impl LockoutStore for SharedLockouts {
    type Ticket = Ticket<<MemoryLockouts as LockoutStore>::Ticket>;

    async fn reserve(&self, account: &str, now: i64, policy: &LockoutPolicy) -> Result<Self::Ticket, Locked> {
        let member = unique_member();
        let max = policy.max_checks as u64;
        match self.store.reserve(&self.key(account), &member, max, policy.window_ms, now).await {
            Some(LogEntry::Added) => Ok(Ticket::Shared(member)),
            Some(LogEntry::Full { retry_after_ms }) => Err(Locked { retry_after_ms }),
            None => self.fallback.reserve(account, now, policy).await.map(Ticket::PerNode),
        }
    }

    async fn release(&self, account: &str, ticket: Self::Ticket) {
        match ticket {
            Ticket::Shared(member) => {
                self.store.remove(&self.key(account), &member).await;
            }
            Ticket::PerNode(reservation) => self.fallback.release(account, reservation).await,
        }
    }

    async fn clear(&self, account: &str) {
        self.store.clear(&self.key(account)).await;
        self.fallback.clear(account).await;
    }
}

/// Failure budgets in Redis: `<prefix>authfail:<hash of the client network>`.
pub struct SharedFailures {
    store: Arc<SharedStore>,
    fallback: MemoryFailures,
}

impl SharedFailures {
    pub fn new(store: Arc<SharedStore>, fallback: MemoryFailures) -> SharedFailures {
        SharedFailures { store, fallback }
    }

    fn key(&self, network: IpAddr) -> String {
        self.store.key("authfail", &hashed(&network.to_string()))
    }
}

impl FailureStore for SharedFailures {
    type Ticket = Ticket<<MemoryFailures as FailureStore>::Ticket>;

    async fn charge(&self, network: IpAddr, now: i64, policy: &FailurePolicy) -> Result<Self::Ticket, Throttled> {
        let member = unique_member();
        let max = u64::from(policy.max_failures);
        match self.store.reserve(&self.key(network), &member, max, policy.window_ms, now).await {
            Some(LogEntry::Added) => Ok(Ticket::Shared(member)),
            Some(LogEntry::Full { retry_after_ms }) => Err(Throttled { retry_after_ms }),
            None => self.fallback.charge(network, now, policy).await.map(Ticket::PerNode),
        }
    }

    async fn refund(&self, network: IpAddr, ticket: Self::Ticket) {
        match ticket {
            Ticket::Shared(member) => {
                self.store.remove(&self.key(network), &member).await;
            }
            Ticket::PerNode(charge) => self.fallback.refund(network, charge).await,
        }
    }

    async fn record(&self, network: IpAddr, now: i64, policy: &FailurePolicy) {
        let max = u64::from(policy.max_failures);
        if self.store.record(&self.key(network), &unique_member(), max, policy.window_ms, now).await.is_none() {
            self.fallback.record(network, now, policy).await;
        }
    }
}
