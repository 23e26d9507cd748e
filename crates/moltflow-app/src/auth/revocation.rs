//! Revocations and other changes to who may do what, on every node.
//!
//! A use case that revokes a session or a key, or changes a user or a tenant, describes what its
//! change makes stale as an [`Invalidation`], then:
//!
//! 1. [`Invalidation::announce`] in its transaction: on PostgreSQL a `pg_notify` that the other
//!    nodes receive when, and only if, the transaction commits (nothing on SQLite: one node);
//! 2. commits;
//! 3. [`Invalidation::apply`] to this node's cache, so that the next request here already sees it.
//!
//! The message names what to evict (session ids, SHA-256 hashes of key secrets, user and tenant
//! ids), never a secret, and the node that sent it (which skips its own messages).

use moltflow_store::signals::{MAX_PAYLOAD_BYTES, notify};
use moltflow_store::{Store, StoreError, Tx};
use serde::{Deserialize, Serialize};

use super::cache::AuthCache;

/// Items per message: 100 hashes of 64 characters stay well under PostgreSQL's 8000 bytes.
const ITEMS_PER_MESSAGE: usize = 100;

/// What a change makes stale in every node's authentication cache.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    /// Revoked sessions.
    #[serde(default, rename = "s", skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<String>,
    /// Hashes of key secrets that no longer work.
    #[serde(default, rename = "k", skip_serializing_if = "Vec::is_empty")]
    pub dead_keys: Vec<String>,
    /// Hashes of key secrets that work differently now (a rotation's grace period).
    #[serde(default, rename = "r", skip_serializing_if = "Vec::is_empty")]
    pub changed_keys: Vec<String>,
    /// Users whose role, account or existence changed.
    #[serde(default, rename = "u", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Tenants whose plan changed.
    #[serde(default, rename = "t", skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Everything: a change too large to name item by item.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// A message on the wire: an invalidation, the node that sent it and when (microseconds since the
/// epoch, for the delay metric). With nothing to invalidate it is a heartbeat.
#[derive(Debug, Serialize, Deserialize)]
pub struct Message {
    #[serde(rename = "n")]
    pub node: String,
    #[serde(rename = "at", default, skip_serializing_if = "Option::is_none")]
    pub sent_at_us: Option<i64>,
    #[serde(flatten)]
    pub invalidation: Invalidation,
}

impl Invalidation {
    pub fn sessions(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.sessions.extend(ids);
        self
    }

    pub fn dead_keys(mut self, hashes: impl IntoIterator<Item = String>) -> Self {
        self.dead_keys.extend(hashes);
        self
    }

    pub fn changed_key(mut self, hash: &str) -> Self {
        self.changed_keys.push(hash.to_owned());
        self
    }

    pub fn user(mut self, id: &str) -> Self {
        self.users.push(id.to_owned());
        self
    }

    pub fn tenant(mut self, id: &str) -> Self {
        self.tenants.push(id.to_owned());
        self
    }

    pub fn is_empty(&self) -> bool {
        !self.all
            && self.sessions.is_empty()
            && self.dead_keys.is_empty()
            && self.changed_keys.is_empty()
            && self.users.is_empty()
            && self.tenants.is_empty()
    }

    /// The list of each kind of item, in a fixed order (for splitting).
    fn lists_mut(&mut self) -> [&mut Vec<String>; 5] {
        [&mut self.sessions, &mut self.dead_keys, &mut self.changed_keys, &mut self.users, &mut self.tenants]
    }

    /// Splits into invalidations of at most `ITEMS_PER_MESSAGE` items each.
    fn chunks(&self) -> Vec<Invalidation> {
        let mut rest = self.clone();
        let mut out = vec![Invalidation { all: self.all, ..Invalidation::default() }];
        let mut count = 0;
        for kind in 0..5 {
            for item in std::mem::take(rest.lists_mut()[kind]) {
                if count == ITEMS_PER_MESSAGE {
                    out.push(Invalidation::default());
                    count = 0;
                }
                if let Some(last) = out.last_mut() {
                    last.lists_mut()[kind].push(item);
                }
                count += 1;
            }
        }
        out
    }

    /// The messages that tell the other nodes, each under PostgreSQL's size limit.
    pub fn messages(&self, node: &str) -> Vec<String> {
        let sent_at_us = (!self.is_empty()).then(epoch_micros);
        let message = |invalidation| Message { node: node.to_owned(), sent_at_us, invalidation };
        self.chunks()
            .into_iter()
            .map(|invalidation| {
                let text = serde_json::to_string(&message(invalidation)).unwrap_or_default();
                if text.len() <= MAX_PAYLOAD_BYTES {
                    text
                } else {
                    // Only oversized ids could get here: the other nodes start over instead.
                    let all = Invalidation { all: true, ..Invalidation::default() };
                    serde_json::to_string(&message(all)).unwrap_or_default()
                }
            })
            .collect()
    }

    /// Tells the other nodes, at the commit of `tx` (nothing on SQLite). `cache` is this node's.
    pub async fn announce(&self, tx: &mut Tx, store: &Store, cache: &AuthCache) -> Result<(), StoreError> {
        let Some(signals) = store.signals() else { return Ok(()) };
        if self.is_empty() {
            return Ok(());
        }
        for message in self.messages(cache.node_id()) {
            notify(tx, signals.channel(), &message).await?;
        }
        Ok(())
    }

    /// Makes the states it names stale in `cache`.
    pub async fn apply(&self, cache: &AuthCache) {
        if self.all {
            cache.flush();
            return;
        }
        cache.forget_sessions(&self.sessions).await;
        cache.forget_key_hashes(&self.dead_keys).await;
        cache.reload_key_hashes(&self.changed_keys).await;
        cache.forget_users(&self.users);
        cache.forget_tenants(&self.tenants);
    }
}

/// Now, in microseconds since the epoch.
pub fn epoch_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_under_the_payload_limit_and_lose_nothing() {
        let hashes: Vec<String> = (0..250).map(|i| format!("{i:064x}")).collect();
        let change = Invalidation::default().dead_keys(hashes.clone()).sessions(["s1".to_owned()]).user("u1");
        let messages = change.messages("node-a");
        assert_eq!(messages.len(), 3);
        let mut back = Invalidation::default();
        for text in &messages {
            assert!(text.len() <= MAX_PAYLOAD_BYTES, "{}", text.len());
            let m: Message = serde_json::from_str(text).unwrap();
            assert_eq!(m.node, "node-a");
            back = back
                .sessions(m.invalidation.sessions)
                .dead_keys(m.invalidation.dead_keys)
                .users_from(m.invalidation.users);
        }
        assert_eq!(back, change);
    }

    #[test]
    fn a_heartbeat_is_a_message_without_items() {
        let m: Message = serde_json::from_str(r#"{"n":"b"}"#).unwrap();
        assert!(m.invalidation.is_empty());
        assert_eq!(
            serde_json::to_string(&Message {
                node: "b".into(),
                sent_at_us: None,
                invalidation: Invalidation::default()
            })
            .unwrap(),
            r#"{"n":"b"}"#
        );
    }

    impl Invalidation {
        fn users_from(mut self, ids: Vec<String>) -> Self {
            self.users.extend(ids);
            self
        }
    }
}
