//! `TestApp`: the real router served over real HTTP on a port of its own, on a fresh database:
//! a temporary SQLite file, or, when `MOLTFLOW_TEST_DATABASE_URL` is set, a fresh copy of a
//! migrated PostgreSQL template (`moltflow_store::testing::postgres`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use base64::Engine;
use moltflow_app::Config;
use moltflow_app::mail::worker::{Outbox, OutboxWorker};
use moltflow_server::{AppState, app};
use moltflow_store::testing::postgres::TestDatabase;
use moltflow_store::{PoolSettings, Store};
use serde_json::{Value, json};

mod eventually;
mod http;
pub use eventually::{eventually, eventually_every};
pub use http::Resp;
/// How a test says it was skipped: `note: <test> skipped (needs …)`.
pub use moltflow_store::testing::{skipped, skipped_part};

/// What a test needs PostgreSQL for, as [`skipped`] names it.
pub const NEEDS_POSTGRES: &str = "PostgreSQL: MOLTFLOW_TEST_DATABASE_URL";

/// The signing key seed every test app uses, so that tests can forge tokens of their own.
pub const TEST_SEED: [u8; 32] = [42; 32];
pub const PASSWORD: &str = "sunny-tulip-harbor-42";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub store: Store,
    _workers: moltflow_app::workers::Workers,
    /// Where the file transport writes `.eml` files (when no SMTP URL is configured).
    pub mail_dir: PathBuf,
    /// The database, for a second node over the same data.
    database: Db,
    /// The outbox worker, when the test runs one ([`TestApp::spawn_with_worker`]); other tests
    /// deliver mail with [`TestApp::deliver_mail`] (tests may stop it and start another).
    pub worker: Option<OutboxWorker>,
    _dir: TempDir,
}

/// Limits shared through a Redis: its URL and the key prefix of this test alone.
#[derive(Clone)]
pub struct SharedRedis {
    pub url: String,
    pub prefix: String,
    /// How long a Redis call may take (production: 50 ms).
    pub timeout: std::time::Duration,
}

/// Where a test app's data lives: the URL, the PostgreSQL schema if any, and the PostgreSQL copy
/// it is in (shared by the nodes over it, dropped with the last of them).
#[derive(Clone)]
struct Db {
    url: String,
    schema: Option<String>,
    copy: Option<Arc<TestDatabase>>,
}

impl Db {
    /// A fresh copy of the migrated PostgreSQL template, or a SQLite file in `dir`.
    async fn fresh(dir: &std::path::Path) -> Db {
        match moltflow_store::testing::postgres::database_url() {
            Some(base) => {
                let started = std::time::Instant::now();
                let copy = TestDatabase::new(&base).await.expect("a fresh PostgreSQL database");
                if std::env::var("MOLTFLOW_TEST_TIMINGS").is_ok() {
                    eprintln!("timing: a fresh PostgreSQL database in {:?}", started.elapsed());
                }
                Db { url: copy.url().to_owned(), schema: copy.schema().map(str::to_owned), copy: Some(Arc::new(copy)) }
            }
            None => Db { url: format!("sqlite://{}", dir.join("test.db").display()), schema: None, copy: None },
        }
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn backend_note() {
    static NOTE: Once = Once::new();
    NOTE.call_once(|| {
        if std::env::var("MOLTFLOW_TEST_DATABASE_URL").is_err() {
            eprintln!("note: MOLTFLOW_TEST_DATABASE_URL is unset: running on SQLite; the PostgreSQL pass is skipped");
        }
    });
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A test app with configuration overrides (`("rate_limit_scale", "0")`, …). No outbox worker
    /// runs: mail stays queued until the test delivers it with [`TestApp::deliver_mail`].
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        Self::spawn_on(None, overrides, false, None).await
    }

    /// As [`TestApp::spawn_with`], with the background outbox worker running, for the tests of
    /// the worker itself (it wakes on queued mail and polls every 50 ms).
    pub async fn spawn_with_worker(overrides: &[(&str, &str)]) -> TestApp {
        Self::spawn_on(None, overrides, true, None).await
    }

    /// Another node over this app's PostgreSQL schema (with its own caches and listener), as
    /// when several `moltflow serve` share one database. `None` on SQLite (one node per file).
    pub async fn spawn_peer(&self) -> Option<TestApp> {
        self.spawn_peer_with(&[]).await
    }

    /// [`TestApp::spawn_peer`] with settings of its own.
    pub async fn spawn_peer_with(&self, overrides: &[(&str, &str)]) -> Option<TestApp> {
        self.database.copy.as_ref()?;
        // One service behind a load balancer: one public URL (the tokens' issuer).
        let mut settings = vec![("public_url", self.base.as_str())];
        settings.extend_from_slice(overrides);
        let peer = Self::spawn_on(Some(self.database.clone()), &settings, false, None).await;
        // Both nodes must hear each other before a test changes anything: their listeners connect
        // to PostgreSQL in the background (real time, not the clock's).
        for node in [self, &peer] {
            node.wait_listening().await;
        }
        Some(peer)
    }

    /// Another node over the same database (`same_db_as`, SQLite too), with its limits in `redis`
    /// if given: what several `moltflow serve` behind a load balancer are.
    pub async fn spawn_node(
        overrides: &[(&str, &str)],
        same_db_as: Option<&TestApp>,
        redis: Option<&SharedRedis>,
    ) -> TestApp {
        Self::spawn_on(same_db_as.map(|a| a.database.clone()), overrides, false, redis).await
    }

    async fn spawn_on(
        database: Option<Db>,
        overrides: &[(&str, &str)],
        with_worker: bool,
        redis: Option<&SharedRedis>,
    ) -> TestApp {
        backend_note();
        let started = std::time::Instant::now();
        moltflow_app::tls::install_crypto_provider();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("moltflow-test-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let database = match database {
            Some(database) => database,
            None => Db::fresh(&dir).await,
        };
        // A test may have the service reach the database through a proxy it controls (`host:port`).
        let url = match overrides.iter().find(|(k, _)| *k == "database_via") {
            Some((_, via)) => moltflow_store::testing::postgres::with_address(&database.url, via),
            None => database.url.clone(),
        };
        let schema = database.schema.clone();
        let mut map: BTreeMap<String, String> = [
            ("database_url", url.clone()),
            ("public_url", format!("http://{addr}")),
            ("mail_dir", dir.join("mail").display().to_string()),
            ("argon2_memory_kib", "256".into()),
            ("argon2_iterations", "1".into()),
            ("jwt_private_key", base64::engine::general_purpose::STANDARD.encode(TEST_SEED)),
            ("log", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in overrides {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        if let Some(redis) = redis {
            map.insert("redis_url".to_owned(), redis.url.clone());
        }
        let mut config = Config::from_map(&map).expect("test config");
        if let Some(redis) = redis {
            config.limits.redis_key_prefix = redis.prefix.clone();
            // Notice Redis coming back within a tenth of a second, so that tests wait little.
            config.limits.redis_probe_interval = std::time::Duration::from_millis(100);
            config.limits.redis_timeout = redis.timeout;
        }
        // A worker (when one runs) delivers within milliseconds. Retries wait a minute, far longer
        // than a test takes on a loaded machine: tests reach them by moving the clock.
        config.mail.poll_interval = std::time::Duration::from_millis(50);
        config.mail.backoff_base = std::time::Duration::from_secs(60);
        // A read-ahead of a credential's state may take longer than the service's 250 ms on a
        // machine running the whole suite; a test of the bound itself asks for it.
        config.auth.state_refresh_wait = std::time::Duration::from_secs(10);
        if let Some(ms) = map.get("test_refresh_wait_ms").and_then(|ms| ms.parse().ok()) {
            config.auth.state_refresh_wait = std::time::Duration::from_millis(ms);
        }
        // A test may ask for another backoff.
        if let Some(ms) = map.get("test_mail_backoff_ms").and_then(|ms| ms.parse().ok()) {
            config.mail.backoff_base = std::time::Duration::from_millis(ms);
        }
        let pool = PoolSettings { max_connections: 5, acquire_timeout: config.database.acquire_timeout };
        let store = Store::connect_with(&url, pool, schema.as_deref()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let state = AppState::new(config, store.clone()).await.expect("state");
        let workers = moltflow_app::workers::spawn(&state.0);
        // On PostgreSQL the revocation listener flushes the authentication cache when it first
        // connects: a test that started before would see its cached states dropped at a moment
        // it does not choose.
        if store.signals().is_some() {
            let listening = async || state.auth_cache.is_listening().then_some(()).ok_or("not listening");
            eventually(Duration::from_secs(10), "the revocation listener to connect", listening).await;
        }
        let worker = with_worker.then(|| OutboxWorker::spawn(state.0.clone()).expect("outbox worker"));
        let router = app(state.clone());
        let deadlines = moltflow_server::http_server::Deadlines::of(&state.config);
        tokio::spawn(moltflow_server::http_server::serve(listener, router, deadlines, std::future::pending()));
        if std::env::var("MOLTFLOW_TEST_TIMINGS").is_ok() {
            eprintln!("timing: a test app ready in {:?}", started.elapsed());
        }
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            state,
            store,
            _workers: workers,
            mail_dir: dir.join("mail"),
            database: Db { url, ..database },
            worker,
            _dir: TempDir(dir),
        }
    }

    /// Registers an owner with the test password; returns the token pair.
    pub async fn register(&self, email: &str) -> Value {
        let r = self
            .post("/auth/register", json!({"email": email, "password": PASSWORD, "full_name": "Test User"}), None)
            .await;
        assert_eq!(r.status, 201, "register: {}", r.body);
        r.body
    }

    /// Registers an owner whose address counts as proven (set in the database: the tests that
    /// need it are not about the mail round trip). Unverified accounts may not make keys that
    /// manage members or billing, invite, or grant owner/admin (API.md §3).
    pub async fn register_verified(&self, email: &str) -> Value {
        let pair = self.register(email).await;
        let n = self.exec("UPDATE users SET email_verified = TRUE WHERE email = $1", &[email]).await;
        assert_eq!(n, 1, "no user {email}");
        pair
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.post("/auth/login", json!({"email": email, "password": password}), None).await
    }

    /// Creates an API key as the holder of `access_token`; returns the create response body.
    pub async fn create_key(&self, access_token: &str, scopes: &[&str]) -> Value {
        let r = self.post("/api-keys", json!({"name": "test key", "scopes": scopes}), Some(access_token)).await;
        assert_eq!(r.status, 201, "create key: {}", r.body);
        r.body
    }

    /// Registers a second user into `owner`'s tenant with `role` (SQL: invitations come later).
    /// Verified, as a member who joined by a mailed invitation is.
    pub async fn add_member(&self, owner_pair: &Value, email: &str, role: &str) -> Value {
        let pair = self.register_verified(email).await;
        self.move_user(&pair, owner_pair["user"]["tenant_id"].as_str().expect("tenant id"), role).await;
        self.login(email, PASSWORD).await.body
    }

    /// Moves a registered user (and their sessions) into `tenant` with `role`, and deletes the
    /// tenant their registration created.
    pub async fn move_user(&self, pair: &Value, tenant: &str, role: &str) {
        let user = pair["user"]["id"].as_str().expect("user id");
        let old_tenant = pair["user"]["tenant_id"].as_str().expect("tenant id");
        self.exec("UPDATE users SET tenant_id = $1, role = $2 WHERE id = $3", &[tenant, role, user]).await;
        self.exec("UPDATE sessions SET tenant_id = $1 WHERE user_id = $2", &[tenant, user]).await;
        self.exec("DELETE FROM tenants WHERE id = $1", &[old_tenant]).await;
    }

    /// Waits until every audit entry queued off the request path (`login.failed`) is written.
    pub async fn flush_audit(&self) {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.state.audit_queue.flush())
            .await
            .expect("the audit writer flushes within 10 s");
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.store.scalar_i64(sql).await.expect("count query")
    }

    /// [`TestApp::count`] with text parameters bound to `$1`, `$2`, …
    pub async fn count_with(&self, sql: &str, params: &[&str]) -> i64 {
        self.store.scalar_i64_with(sql, params).await.expect("count query")
    }

    /// Runs a statement with text parameters bound to `$1`, `$2`, …; returns the rows it touched.
    pub async fn exec(&self, sql: &str, params: &[&str]) -> u64 {
        self.store.execute_with(sql, params).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Moves the app's clock forward: what tests do instead of sleeping.
    pub fn advance(&self, by: std::time::Duration) {
        self.state.clock.advance(by);
    }

    /// Runs the outbox once, as the worker would: every mail due now is delivered (or fails and
    /// is rescheduled). Returns how many were attempted.
    pub async fn deliver_mail(&self) -> usize {
        Outbox::new(self.state.0.clone()).expect("outbox").run_once().await
    }

    /// Waits until every API-key use noted so far has its `last_used_at` written.
    pub async fn flush_last_used(&self) {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.state.last_used.flush())
            .await
            .expect("the last_used writer flushes within 10 s");
    }

    /// Waits (up to 10 s) until `sql` counts `n`: for what other tasks or processes do on real
    /// time (a PostgreSQL listener connecting), not for what the clock governs.
    pub async fn wait_count(&self, sql: &str, n: i64) {
        eventually(Duration::from_secs(10), format!("{n} from {sql}"), async || {
            let got = self.count(sql).await;
            if got == n { Ok(()) } else { Err(got) }
        })
        .await;
    }

    /// Waits (up to 10 s) until this node's revocation listener is connected (PostgreSQL).
    async fn wait_listening(&self) {
        let listening = async || self.state.auth_cache.is_listening().then_some(()).ok_or("not listening");
        eventually(Duration::from_secs(10), "the revocation listener to connect", listening).await;
    }
}

pub fn token(pair: &Value, field: &str) -> String {
    pair[field].as_str().unwrap_or_else(|| panic!("no {field} in {pair}")).to_owned()
}

/// A registered owner: `(access token, tenant id)`.
pub async fn owner(app: &TestApp, email: &str) -> (String, String) {
    let pair = app.register(email).await;
    (token(&pair, "access_token"), pair["user"]["tenant_id"].as_str().expect("tenant id").to_owned())
}

/// Inserts a pending invitation row directly (what no API can do: backdated, or sent before a
/// rule existed); `token_hash` is the SHA-256 of its raw token.
pub async fn insert_invitation(app: &TestApp, row: moltflow_store::invitations::InvitationRow) {
    let mut conn = app.store.conn().await.expect("connection");
    moltflow_store::invitations::insert_invitation(&mut conn, &row).await.expect("invitation");
}

/// Moves a tenant to another plan, as billing will.
pub async fn set_plan(app: &TestApp, tenant_id: &str, plan_id: &str) {
    app.exec("UPDATE tenants SET plan_id = $1 WHERE id = $2", &[plan_id, tenant_id]).await;
}

/// The arrange step most tests share: a fresh app and its registered owner (`owner@example.com`):
/// `(app, token pair, access token)`.
pub async fn app_with_owner() -> (TestApp, Value, String) {
    let app = TestApp::spawn().await;
    let owner = app.register_verified("owner@example.com").await;
    let access = token(&owner, "access_token");
    (app, owner, access)
}
