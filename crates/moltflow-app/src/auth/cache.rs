//! What keeps authentication off the database: verified access tokens (until they expire), and
//! session and API-key states (for one second, or until a change makes them stale).
//!
//! A change on this node (a revocation, a new role) takes effect on the very next request, even
//! one whose state was being loaded while the change committed (see `staleness`). On PostgreSQL
//! other nodes hear of it within milliseconds (`revocation`, `listener`); the one-second lifetime
//! of a state is the backstop when they cannot. That second is measured on the injected clock
//! (`now`, read once per request by the caller), so that tests move time instead of sleeping; the
//! caches' own time-to-live (real time) only bounds memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use moltflow_core::scope::ScopeSet;
use moltflow_store::accounts::{find_tenant, find_user};
use moltflow_store::api_keys::find_api_key_by_hash;
use moltflow_store::sessions::find_session;
use moltflow_store::{AsDbConn, Store, StoreError};

pub use super::cached_state::{CachedKey, KeyState, Member, SessionState};
use super::cached_state::{Reading, key_dependencies};
use super::jwt::{ACCESS_TOKEN_SECONDS, Claims};
use super::staleness::{Dependencies, Kind, Staleness};

/// How long a session or key state is trusted before it is read again.
const STATE_TTL: Duration = Duration::from_secs(1);
/// Loads of one state in a row that changes can overtake before the state is read uncached.
const MAX_RELOADS: usize = 3;
const STATE_TTL_MS: i64 = STATE_TTL.as_millis() as i64;

/// Age at which the next request reads a state again for everyone, while the others keep using
/// it: a state in use is replaced before it expires, so no request waits for a database read on a
/// busy session or key (64 requests in flight on one key all waited for it once a second), and
/// none is ever answered from a state older than [`STATE_TTL`].
const REFRESH_AFTER_MS: i64 = STATE_TTL_MS * 3 / 4;
/// How long the refreshing request waits for that read (real time) before it answers from the
/// state it has: a slow or unreachable database must not hold a request whose state is valid.
const REFRESH_WAIT: Duration = Duration::from_millis(250);

/// What a request may do with a cached state.
#[derive(Debug, PartialEq, Eq)]
enum Usable {
    AsIs,
    /// Trusted, and old enough to be read again ahead of its expiry.
    RefreshAhead,
    /// Expired (a clock set back too), or stale after a change: read it again before use.
    Reload,
}
/// How long a key secret that authenticated stays known valid after its last load, for the
/// failed-authentication throttle (a key in use is loaded again every second).
const KNOWN_KEY_TTL: Duration = Duration::from_secs(3600);

/// The caches' hasher: seeded at random like the standard one, and a fraction of its cost on the
/// keys hashed on every request (a key's 64 hex digits, a 300-byte token).
type Hasher = foldhash::fast::RandomState;

pub struct AuthCache {
    tokens: moka::sync::Cache<Arc<str>, Arc<Claims>, Hasher>,
    sessions: moka::future::Cache<String, Arc<SessionState>, Hasher>,
    keys: moka::future::Cache<String, Option<Arc<KeyState>>, Hasher>,
    /// Which of those states changes made stale.
    staleness: Staleness,
    /// This node, as named in the changes it announces (so that it skips its own).
    node_id: String,
    /// Hashes of key secrets that authenticated recently: the failed-authentication throttle
    /// lets them through without a charge.
    known_keys: moka::sync::Cache<String, (), Hasher>,
    /// Key states read from the database (`moltflow_api_key_lookups_total`).
    key_lookups: AtomicU64,
    /// Whether this node hears other nodes' changes now (PostgreSQL's listener is connected).
    listening: AtomicBool,
    /// How long a read-ahead holds its request (`REFRESH_WAIT` unless configured).
    refresh_wait: Duration,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            tokens: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(ACCESS_TOKEN_SECONDS as u64))
                .build_with_hasher(Hasher::default()),
            sessions: moka::future::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(STATE_TTL)
                .build_with_hasher(Hasher::default()),
            keys: moka::future::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(STATE_TTL)
                .build_with_hasher(Hasher::default()),
            staleness: Staleness::default(),
            node_id: uuid::Uuid::new_v4().simple().to_string(),
            known_keys: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(KNOWN_KEY_TTL)
                .build_with_hasher(Hasher::default()),
            key_lookups: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            refresh_wait: REFRESH_WAIT,
        }
    }
}

impl AuthCache {
    /// An empty cache whose read-aheads hold their request at most `refresh_wait`.
    pub fn with_refresh_wait(refresh_wait: Duration) -> AuthCache {
        AuthCache { refresh_wait, ..AuthCache::default() }
    }
}

async fn load_member(c: &mut impl AsDbConn, user_id: &str) -> Result<Option<Member>, StoreError> {
    let Some(user) = find_user(c, user_id).await? else { return Ok(None) };
    let plan_id = find_tenant(c, &user.tenant_id)
        .await?
        .map_or_else(|| moltflow_core::plan::DEFAULT_PLAN.into(), |t| t.plan_id.into());
    Ok(Some(Member { user: Arc::new(user), plan_id }))
}

impl AuthCache {
    /// What a request at `now` may do with a state read as `reading`.
    fn usable(&self, reading: &Reading, dependencies: Dependencies<'_>, now: i64) -> Usable {
        let age = now - reading.at;
        if !(0..STATE_TTL_MS).contains(&age) || !self.staleness.is_current(&reading.stamp, dependencies) {
            Usable::Reload
        } else if age >= REFRESH_AFTER_MS {
            Usable::RefreshAhead
        } else {
            Usable::AsIs
        }
    }

    /// Claims of a token verified before, if it has not expired since.
    pub fn verified_token(&self, token: &str, now: i64) -> Option<Arc<Claims>> {
        self.tokens.get(token).filter(|c| c.exp * 1000 > now)
    }

    pub fn remember_token(&self, token: &str, claims: Arc<Claims>) {
        self.tokens.insert(Arc::from(token), claims);
    }

    /// The session's state, from memory or (once per second per session, and after a change
    /// made it stale) from the database.
    pub async fn session(
        &self,
        store: &Store,
        session_id: &str,
        now: i64,
    ) -> Result<Arc<SessionState>, Arc<StoreError>> {
        // The hot path builds no loader. A loader future holds the database reads, kilobytes that
        // every request moved through its callers' futures even when the state was cached
        // (memmove was the largest cost of a key-authenticated `/auth/me`); the rest is boxed.
        if let Some(state) = self.sessions.get(session_id).await
            && self.usable(&state.reading, state.dependencies(session_id), now) == Usable::AsIs
        {
            return Ok(state);
        }
        Box::pin(self.load_or_refresh_session(store, session_id, now)).await
    }

    async fn load_or_refresh_session(
        &self,
        store: &Store,
        session_id: &str,
        now: i64,
    ) -> Result<Arc<SessionState>, Arc<StoreError>> {
        for _ in 0..MAX_RELOADS {
            let state =
                self.sessions.try_get_with_by_ref(session_id, self.load_session(store, session_id, now)).await?;
            let usable = self.usable(&state.reading, state.dependencies(session_id), now);
            if usable != Usable::Reload {
                if usable == Usable::RefreshAhead && state.reading.claim_refresh() {
                    // A failed or slow read leaves the current state until it expires; the read
                    // after that reports the failure.
                    if let Ok(Ok(next)) =
                        tokio::time::timeout(self.refresh_wait, self.load_session(store, session_id, now)).await
                    {
                        self.sessions.insert(session_id.to_owned(), next.clone()).await;
                        return Ok(next);
                    }
                }
                return Ok(state);
            }
            self.sessions.invalidate(session_id).await;
        }
        // Changes keep overtaking the loads: this read, begun after all of them, is used uncached.
        Ok(self.load_session(store, session_id, now).await?)
    }

    async fn load_session(&self, store: &Store, session_id: &str, now: i64) -> Result<Arc<SessionState>, StoreError> {
        let stamp = self.staleness.stamp();
        let mut conn = store.conn().await?;
        let Some(session) = find_session(&mut conn, session_id).await? else {
            return Ok(Arc::new(SessionState {
                revoked: true,
                member: None,
                method: String::new(),
                created_at: 0,
                reading: Reading::new(stamp, now),
            }));
        };
        let member = load_member(&mut conn, &session.user_id).await?;
        Ok(Arc::new(SessionState {
            revoked: session.revoked_at.is_some(),
            member,
            method: session.method,
            created_at: session.created_at,
            reading: Reading::new(stamp, now),
        }))
    }

    /// The state of the key found by the SHA-256 of a presented secret, as cached, if a request at
    /// `now` may use it as it is. As for sessions: no loader on the hot path.
    pub async fn cached_key(&self, hash: &str, now: i64) -> CachedKey {
        match self.keys.get(hash).await {
            // No key has this hash: no change can give it one (secrets are random and new).
            Some(None) => CachedKey::Unknown,
            Some(Some(state)) if self.usable(&state.reading, key_dependencies(&state, hash), now) == Usable::AsIs => {
                CachedKey::Usable(state)
            }
            _ => CachedKey::Absent,
        }
    }

    /// The key's state read again (or first) when [`AuthCache::cached_key`] had none to use
    /// (None: no such key).
    pub async fn load_key_state(
        &self,
        store: &Store,
        hash: &str,
        now: i64,
    ) -> Result<Option<Arc<KeyState>>, Arc<StoreError>> {
        Box::pin(self.load_or_refresh_key(store, hash, now)).await
    }

    async fn load_or_refresh_key(
        &self,
        store: &Store,
        hash: &str,
        now: i64,
    ) -> Result<Option<Arc<KeyState>>, Arc<StoreError>> {
        for _ in 0..MAX_RELOADS {
            // No key has this hash: no change can give it one (secrets are random and new).
            let Some(state) = self.keys.try_get_with_by_ref(hash, self.load_key(store, hash, now)).await? else {
                return Ok(None);
            };
            let usable = self.usable(&state.reading, key_dependencies(&state, hash), now);
            if usable != Usable::Reload {
                if usable == Usable::RefreshAhead && state.reading.claim_refresh() {
                    // As for sessions; a key deleted meanwhile is cached as unknown.
                    if let Ok(Ok(next)) = tokio::time::timeout(self.refresh_wait, self.load_key(store, hash, now)).await
                    {
                        self.keys.insert(hash.to_owned(), next.clone()).await;
                        return Ok(next);
                    }
                }
                return Ok(Some(state));
            }
            self.keys.invalidate(hash).await;
        }
        Ok(self.load_key(store, hash, now).await?)
    }

    async fn load_key(&self, store: &Store, hash: &str, now: i64) -> Result<Option<Arc<KeyState>>, StoreError> {
        let stamp = self.staleness.stamp();
        self.key_lookups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("moltflow_api_key_lookups_total").increment(1);
        let mut conn = store.conn().await?;
        let Some(row) = find_api_key_by_hash(&mut conn, hash).await? else { return Ok(None) };
        let member = load_member(&mut conn, &row.created_by).await?;
        let via_previous = row.key_hash != hash;
        let stored_hash =
            if via_previous { row.previous_key_hash.clone().unwrap_or_default() } else { row.key_hash.clone() };
        Ok(Some(Arc::new(KeyState {
            noted_valid: AtomicBool::new(false),
            stored_hash,
            scopes: ScopeSet::from_names(row.scopes.split_whitespace()).expanded(),
            expires_at: row.expires_at,
            revoked: row.revoked_at.is_some(),
            previous_until: via_previous.then_some(row.previous_expires_at.unwrap_or(0)),
            member,
            last_used_at: AtomicI64::new(row.last_used_at.unwrap_or(0)),
            id: row.id,
            tenant_id: row.tenant_id,
            reading: Reading::new(stamp, now),
        })))
    }

    /// Whether the secret that found `cached` (with this hash) authenticated recently: with that
    /// very state (no second lookup on the hot path), or with an earlier one.
    pub fn is_known_valid(&self, cached: &CachedKey, hash: &str) -> bool {
        match cached {
            CachedKey::Usable(state) if state.noted_valid.load(Ordering::Relaxed) => true,
            _ => self.known_keys.contains_key(hash),
        }
    }

    /// Notes a successful authentication with `key` (once per loaded state).
    pub fn note_valid_key(&self, key: &KeyState, hash: &str) {
        // Read first: a swap on every request wrote the state's cache line from both workers.
        if !key.noted_valid.load(Ordering::Relaxed) && !key.noted_valid.swap(true, Ordering::Relaxed) {
            self.known_keys.insert(hash.to_owned(), ());
        }
    }

    /// Key states read from the database so far.
    pub fn key_lookups(&self) -> u64 {
        self.key_lookups.load(Ordering::Relaxed)
    }

    /// Whether other nodes' changes reach this node now (set by the revocation listener).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
    }

    /// The name this node gives itself in the changes it announces.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Sessions revoked: their next request reads the database (and is refused).
    pub async fn forget_sessions(&self, ids: &[String]) {
        self.staleness.changed(ids.iter().map(|id| (Kind::Session, id.as_str())));
        for id in ids {
            self.sessions.invalidate(id).await;
        }
    }

    /// Key secrets (by hash) that no longer work.
    pub async fn forget_key_hashes(&self, hashes: &[String]) {
        self.staleness.changed(hashes.iter().map(|h| (Kind::KeyHash, h.as_str())));
        for hash in hashes {
            self.known_keys.invalidate(hash);
            self.keys.invalidate(hash).await;
        }
    }

    /// Key secrets whose meaning changed (a rotation's grace period): read again on next use.
    pub async fn reload_key_hashes(&self, hashes: &[String]) {
        self.staleness.changed(hashes.iter().map(|h| (Kind::KeyHash, h.as_str())));
        for hash in hashes {
            self.keys.invalidate(hash).await;
        }
    }

    /// Users changed (role, profile, removal): their sessions and keys are read again.
    pub fn forget_users(&self, ids: &[String]) {
        self.staleness.changed(ids.iter().map(|id| (Kind::User, id.as_str())));
    }

    /// Tenants changed (plan): their sessions and keys are read again.
    pub fn forget_tenants(&self, ids: &[String]) {
        self.staleness.changed(ids.iter().map(|id| (Kind::Tenant, id.as_str())));
    }

    /// Forgets every session and key state (this node may have missed changes). The known-valid
    /// key hashes stay: they only spare a key the failed-authentication charge, never let a
    /// revoked one in (its state is read again and refused), and a flush at the listener's first
    /// connection must not make a working key pay for other clients' failures.
    pub fn flush(&self) {
        self.staleness.flush();
        self.sessions.invalidate_all();
        self.keys.invalidate_all();
        metrics::counter!("moltflow_auth_cache_flushes_total").increment(1);
    }
}
