//! Which cached authentication states a change has made stale.
//!
//! Every change (a revoked session, a revoked key secret, a user's new role, a tenant's new plan)
//! is recorded with a generation number; a cached state remembers the generation at which its
//! database read began. A state read before a change it depends on is stale, even one whose read
//! was still running when the change arrived: evicting an entry alone cannot catch that load,
//! which would put the old state back for up to a second.
//!
//! The request path pays one atomic load while nothing changed (a state remembers the last
//! generation it was found current at); after a change, each state looks its user, tenant and
//! own key up once.

use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a change is remembered. A state is read once a second, so a state older than this
/// cannot exist unless its read hung; for that case a forgotten change makes every state read
/// before it stale (a reload, never a wrong answer).
const RETAIN: Duration = Duration::from_secs(30);
/// Changes remembered at most; beyond, the oldest are forgotten as above.
const MAX_CHANGES: usize = 100_000;

/// What a change concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Session,
    KeyHash,
    User,
    Tenant,
}

/// The identities a cached state depends on.
pub struct Dependencies<'a> {
    pub own: (Kind, &'a str),
    pub user: Option<&'a str>,
    pub tenant: Option<&'a str>,
}

/// Generations of a cached state: when its read began, and the last generation it was found
/// current at.
#[derive(Debug)]
pub struct Stamp {
    loaded: u64,
    checked: AtomicU64,
}

#[derive(Default)]
struct Changes {
    /// The latest generation of a change to each identity, by kind (`Kind as usize`).
    latest: [HashMap<String, u64>; 4],
    /// The same changes in order, for forgetting them.
    order: VecDeque<(Instant, u64, Kind, String)>,
}

#[derive(Default)]
pub struct Staleness {
    /// Advanced by every change, after the change is recorded.
    generation: AtomicU64,
    /// States read before this generation are stale whatever they depend on.
    floor: AtomicU64,
    changes: RwLock<Changes>,
}

impl Staleness {
    /// The stamp of a state whose read begins now.
    pub fn stamp(&self) -> Stamp {
        let g = self.generation.load(Ordering::Acquire);
        Stamp { loaded: g, checked: AtomicU64::new(g) }
    }

    /// Records changes to these identities: states read before now that depend on them are stale.
    pub fn changed<'a>(&self, items: impl IntoIterator<Item = (Kind, &'a str)>) {
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            return;
        }
        let now = Instant::now();
        let mut changes = self.changes.write().unwrap_or_else(|e| e.into_inner());
        let g = self.generation.load(Ordering::Acquire) + 1;
        for (kind, id) in items {
            changes.latest[kind as usize].insert(id.to_owned(), g);
            changes.order.push_back((now, g, kind, id.to_owned()));
        }
        let mut floor = 0;
        while let Some((at, old, ..)) = changes.order.front()
            && (now.duration_since(*at) > RETAIN || changes.order.len() > MAX_CHANGES)
        {
            floor = *old + 1;
            if let Some((_, old, kind, id)) = changes.order.pop_front()
                && changes.latest[kind as usize].get(&id) == Some(&old)
            {
                changes.latest[kind as usize].remove(&id);
            }
        }
        if floor > 0 {
            self.floor.fetch_max(floor, Ordering::AcqRel);
        }
        // Published last: a reader that sees `g` sees the changes recorded under it.
        self.generation.store(g, Ordering::Release);
    }

    /// Every state read before now is stale (this node may have missed changes).
    pub fn flush(&self) {
        let _changes = self.changes.write().unwrap_or_else(|e| e.into_inner());
        let g = self.generation.load(Ordering::Acquire) + 1;
        self.floor.fetch_max(g, Ordering::AcqRel);
        self.generation.store(g, Ordering::Release);
    }

    /// Whether a state read under `stamp`, depending on `deps`, is still current.
    pub fn is_current(&self, stamp: &Stamp, deps: Dependencies<'_>) -> bool {
        let now = self.generation.load(Ordering::Acquire);
        if stamp.checked.load(Ordering::Relaxed) == now {
            return true;
        }
        if stamp.loaded < self.floor.load(Ordering::Acquire) {
            return false;
        }
        let changes = self.changes.read().unwrap_or_else(|e| e.into_inner());
        let newer = |kind: Kind, id: &str| changes.latest[kind as usize].get(id).is_some_and(|g| *g > stamp.loaded);
        let stale = newer(deps.own.0, deps.own.1)
            || deps.user.is_some_and(|u| newer(Kind::User, u))
            || deps.tenant.is_some_and(|t| newer(Kind::Tenant, t));
        if !stale {
            stamp.checked.store(now, Ordering::Relaxed);
        }
        !stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps<'a>(session: &'a str, user: &'a str, tenant: &'a str) -> Dependencies<'a> {
        Dependencies { own: (Kind::Session, session), user: Some(user), tenant: Some(tenant) }
    }

    #[test]
    fn a_change_makes_only_the_states_read_before_it_and_depending_on_it_stale() {
        let s = Staleness::default();
        let before = s.stamp();
        let other = s.stamp();
        s.changed([(Kind::User, "u1")]);
        let after = s.stamp();
        assert!(!s.is_current(&before, deps("s1", "u1", "t1")));
        assert!(s.is_current(&other, deps("s2", "u2", "t1")));
        assert!(s.is_current(&after, deps("s1", "u1", "t1")));
        s.changed([(Kind::Tenant, "t1")]);
        assert!(!s.is_current(&other, deps("s2", "u2", "t1")));
        assert!(!s.is_current(&after, deps("s1", "u1", "t1")));
        let key = s.stamp();
        s.changed([(Kind::KeyHash, "h1")]);
        assert!(!s.is_current(&key, Dependencies { own: (Kind::KeyHash, "h1"), user: None, tenant: None }));
        assert!(s.is_current(&key, Dependencies { own: (Kind::KeyHash, "h2"), user: Some("u1"), tenant: Some("t1") }));
        // A session id and a key hash that happen to be equal are different identities.
        assert!(s.is_current(&key, Dependencies { own: (Kind::Session, "h1"), user: None, tenant: None }));
    }

    #[test]
    fn a_flush_makes_every_earlier_state_stale() {
        let s = Staleness::default();
        let before = s.stamp();
        assert!(s.is_current(&before, deps("s1", "u1", "t1")));
        s.flush();
        assert!(!s.is_current(&before, deps("s1", "u1", "t1")));
        assert!(s.is_current(&s.stamp(), deps("s1", "u1", "t1")));
    }

    #[test]
    fn forgotten_changes_leave_earlier_states_stale() {
        let s = Staleness::default();
        let before = s.stamp();
        for i in 0..=MAX_CHANGES {
            s.changed([(Kind::Session, i.to_string().as_str())]);
        }
        // "0" was forgotten to stay within the bound; a state read before it is stale anyway.
        assert!(!s.is_current(&before, deps("0", "u", "t")));
        let after = s.stamp();
        assert!(s.is_current(&after, deps("0", "u", "t")));
    }
}
