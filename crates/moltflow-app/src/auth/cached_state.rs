//! The states the authentication cache holds (a session's, an API key's) and when each was read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use moltflow_core::scope::ScopeSet;
use moltflow_store::accounts::UserRow;

use super::staleness::{Dependencies, Kind, Stamp};

/// When a cached state was read (clock time, and the change generation its read began at), and
/// whether a request is reading it again.
#[derive(Debug)]
pub(super) struct Reading {
    pub(super) stamp: Stamp,
    pub(super) at: i64,
    /// Taken by the one request that reads the state again ahead of its expiry.
    pub(super) refreshing: AtomicBool,
}

impl Reading {
    pub(super) fn new(stamp: Stamp, at: i64) -> Reading {
        Reading { stamp, at, refreshing: AtomicBool::new(false) }
    }

    /// Whether the caller is the one request to read the state again.
    pub(super) fn claim_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }
}

/// A user with the plan of its tenant, as of the last load.
#[derive(Debug)]
pub struct Member {
    pub user: Arc<UserRow>,
    /// Shared with every principal made from this state (one reference count, not a copy).
    pub plan_id: Arc<str>,
}

/// A session as authentication needs it.
#[derive(Debug)]
pub struct SessionState {
    pub revoked: bool,
    pub member: Option<Member>,
    pub method: String,
    pub created_at: i64,
    pub(super) reading: Reading,
}

impl SessionState {
    pub(super) fn dependencies<'a>(&'a self, id: &'a str) -> Dependencies<'a> {
        Dependencies {
            own: (Kind::Session, id),
            user: self.member.as_ref().map(|m| m.user.id.as_str()),
            tenant: self.member.as_ref().map(|m| m.user.tenant_id.as_str()),
        }
    }
}

/// An API key as authentication needs it, relative to the secret that found it.
#[derive(Debug)]
pub struct KeyState {
    pub id: String,
    pub tenant_id: String,
    /// The stored hash the presented secret matched.
    pub stored_hash: String,
    /// The key's scopes with the ones they imply.
    pub scopes: ScopeSet,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    /// Found through the previous secret of a rotation: valid until this time only.
    pub previous_until: Option<i64>,
    pub member: Option<Member>,
    /// Last use written (or about to be): `last_used_at` is written at most once a minute.
    pub last_used_at: AtomicI64,
    /// Whether a success with this state has been noted among the known-valid keys.
    pub noted_valid: AtomicBool,
    pub(super) reading: Reading,
}

/// What the cache holds for a key hash, as a request at a given time may use it.
pub enum CachedKey {
    /// A state fresh and current enough to use as it is.
    Usable(Arc<KeyState>),
    /// No key has this hash (a recent read found none).
    Unknown,
    /// Nothing usable: the state must be read (again).
    Absent,
}

pub(super) fn key_dependencies<'a>(key: &'a KeyState, hash: &'a str) -> Dependencies<'a> {
    Dependencies {
        own: (Kind::KeyHash, hash),
        user: key.member.as_ref().map(|m| m.user.id.as_str()),
        tenant: Some(key.tenant_id.as_str()),
    }
}
