//! Three `moltflow serve` processes on loopback over one PostgreSQL database, as behind a load
//! balancer (issue 15): requests are spread over them; a key revoked, a session logged out and a
//! member removed on one node are refused by the others within 100 ms; concurrent consumes on
//! all three never grant more than the monthly quota; a node killed with SIGKILL mid-load loses
//! nothing it acknowledged. With `MOLTFLOW_TEST_REDIS_URL` set the nodes also share Redis.
//!
//! Needs `MOLTFLOW_TEST_DATABASE_URL` (`.ci/run` sets it for its PostgreSQL pass); skipped
//! otherwise. `MOLTFLOW_TEST_REVOCATION_ROUNDS` (default 12) sets how many revocations are timed;
//! the latencies are printed (`--nocapture`) for `BENCHMARKS.md`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moltflow_store::Store;
use serde_json::{Value, json};

use moltflow_store::testing::postgres::TestDatabase;
use moltflow_store::testing::skipped;
use support::{Node, eventually_async, eventually_async_every, free_port, moltflow};

/// How soon every other node must refuse what one node revoked (API.md §5).
const WITHIN: Duration = Duration::from_millis(100);
/// The signing key every node shares (a base64 Ed25519 seed).
const SIGNING_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
const PASSWORD: &str = "sunny-tulip-harbor-42";

struct Cluster {
    nodes: Vec<Node>,
    client: reqwest::Client,
    store: Store,
    dir: PathBuf,
    /// The database the nodes share (dropped after them).
    _database: TestDatabase,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The database URL with the schema as every connection's search path.
fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

fn start_node(dir: &Path, database_url: &str, public_url: &str, port: u16, name: &str) -> Node {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
    let mut cmd = moltflow();
    cmd.arg("serve")
        .current_dir(dir)
        .env("MOLTFLOW_BIND", format!("127.0.0.1:{port}"))
        .env("MOLTFLOW_DATABASE_URL", database_url)
        .env("MOLTFLOW_PUBLIC_URL", public_url)
        .env("MOLTFLOW_JWT_PRIVATE_KEY", SIGNING_KEY)
        .env("MOLTFLOW_MAIL_DIR", dir.join("mail"))
        .env("MOLTFLOW_LOG", "warn")
        // Limits stay on (they are shared in Redis when configured) but out of the load's way.
        .env("MOLTFLOW_RATE_LIMIT_SCALE", "1000")
        .env("MOLTFLOW_ARGON2_MEMORY_KIB", "256")
        .env("MOLTFLOW_ARGON2_ITERATIONS", "1")
        .stdout(Stdio::null())
        .stderr(log);
    if let Ok(redis) = std::env::var("MOLTFLOW_TEST_REDIS_URL") {
        cmd.env("MOLTFLOW_REDIS_URL", redis);
        // Keys of this run only: the limits are shared in Redis now, and other runs use it too.
        cmd.env("MOLTFLOW_REDIS_KEY_PREFIX", format!("moltflow-test:multi-{}:", std::process::id()));
    }
    Node { port, child: cmd.spawn().expect("start moltflow serve") }
}

impl Cluster {
    async fn start(n: usize) -> Option<Cluster> {
        let Some(base) = moltflow_store::testing::postgres::database_url() else {
            skipped("PostgreSQL: MOLTFLOW_TEST_DATABASE_URL (.ci/run sets it)");
            return None;
        };
        moltflow_server::tls::install_crypto_provider();
        let database = TestDatabase::new(&base).await.expect("a fresh PostgreSQL database");
        let store = Store::connect_with_schema(database.url(), 2, database.schema()).await.expect("connect");
        let dir = std::env::temp_dir().join(format!("moltflow-multi-node-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let database_url = match database.schema() {
            Some(schema) => url_with_schema(database.url(), schema),
            None => database.url().to_owned(),
        };
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        // The nodes serve one public URL (the tokens' issuer), as behind a load balancer.
        let public_url = format!("http://127.0.0.1:{}", ports[0]);
        let mut cluster =
            Cluster { nodes: Vec::new(), client: reqwest::Client::new(), store, dir, _database: database };
        for (i, port) in ports.iter().enumerate() {
            cluster.nodes.push(start_node(&cluster.dir, &database_url, &public_url, *port, &format!("node{i}")));
            // The first node applies the migrations before the others start.
            if i == 0 {
                cluster.wait_ready(0).await;
            }
        }
        for i in 1..n {
            cluster.wait_ready(i).await;
        }
        Some(cluster)
    }

    async fn wait_ready(&mut self, i: usize) {
        let url = format!("http://127.0.0.1:{}/readyz", self.nodes[i].port);
        eventually_async(Duration::from_secs(60), format!("node {i} to be ready"), async || {
            if self.client.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.nodes[i].child.try_wait() {
                panic!("node {i} exited ({status}): {}", self.log(i));
            }
            Err(format!("not ready; its log: {}", self.log(i)))
        })
        .await;
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("node{i}.log"))).unwrap_or_default()
    }

    fn url(&self, node: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}/api/v2{path}", self.nodes[node].port)
    }

    /// `(status, body)`; a node that is gone answers `None`.
    async fn call(
        &self,
        node: usize,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(node, path)).timeout(Duration::from_secs(10));
        if let Some(auth) = auth {
            req = if auth.starts_with("mf_") { req.header("x-api-key", auth) } else { req.bearer_auth(auth) };
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.ok()?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await.ok()?;
        Some((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn ok(&self, node: usize, method: &str, path: &str, auth: Option<&str>, body: Option<Value>) -> Value {
        let (status, body) = self.call(node, method, path, auth, body).await.expect("node answers");
        assert!((200..300).contains(&status), "{method} {path} on node {node}: {status} {body}");
        body
    }

    async fn me(&self, node: usize, auth: &str) -> u16 {
        self.call(node, "GET", "/auth/me", Some(auth), None).await.expect("node answers").0
    }

    /// Registers an owner (on `node`); returns `(access token, user id, tenant id)`.
    async fn register(&self, node: usize, email: &str) -> (String, String, String) {
        let body = json!({"email": email, "password": PASSWORD, "full_name": "Node Test"});
        let pair = self.ok(node, "POST", "/auth/register", None, Some(body)).await;
        let s = |v: &Value| v.as_str().expect("string").to_owned();
        (s(&pair["access_token"]), s(&pair["user"]["id"]), s(&pair["user"]["tenant_id"]))
    }

    async fn login(&self, node: usize, email: &str) -> String {
        let body = json!({"email": email, "password": PASSWORD});
        self.ok(node, "POST", "/auth/login", None, Some(body)).await["access_token"].as_str().expect("token").to_owned()
    }

    async fn create_key(&self, node: usize, token: &str, scopes: &[&str]) -> (String, String) {
        let key = self.ok(node, "POST", "/api-keys", Some(token), Some(json!({"name": "k", "scopes": scopes}))).await;
        (key["id"].as_str().expect("id").to_owned(), key["raw_key"].as_str().expect("raw key").to_owned())
    }

    /// Moves a registered user into `tenant` with `role` (as an accepted invitation would).
    async fn join(&self, user: &str, own_tenant: &str, tenant: &str, role: &str) {
        for sql in [
            format!("UPDATE users SET tenant_id = '{tenant}', role = '{role}' WHERE id = '{user}'"),
            format!("UPDATE sessions SET tenant_id = '{tenant}' WHERE user_id = '{user}'"),
            format!("DELETE FROM tenants WHERE id = '{own_tenant}'"),
        ] {
            self.store.execute_raw(&sql).await.expect("sql");
        }
    }

    /// Every node but `revoker` refuses `credential` in every request sent `WITHIN` or more after
    /// `since` (the revoking answer); returns, per node, when the first refusal came back (an upper
    /// bound of the delay: it includes that request's own round trip). The cluster has three
    /// nodes: the two others are polled at once.
    async fn refused_elsewhere(&self, revoker: usize, credential: &str, since: Instant, what: &str) -> Vec<Duration> {
        let poll = async |node: usize| {
            let refused = format!("{what} refused by node {node}");
            eventually_async_every(Duration::from_secs(10), Duration::from_millis(1), refused, async || {
                let sent = since.elapsed();
                let status = self.me(node, credential).await;
                if status == 401 {
                    return Ok(since.elapsed());
                }
                assert_eq!(status, 200, "{what} on node {node}");
                assert!(
                    sent < WITHIN,
                    "{what}: node {node} accepted a request sent {sent:?} after node {revoker} revoked it"
                );
                Err(status)
            })
            .await
        };
        let others: Vec<usize> = (0..self.nodes.len()).filter(|n| *n != revoker).collect();
        let (a, b) = tokio::join!(poll(others[0]), poll(others[1]));
        vec![a, b]
    }
}

/// `moltflow_revocation_delay_seconds` summed over the nodes.
#[derive(Default)]
struct DelayHistogram {
    /// `(upper bound, cumulative count)`, ascending.
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl DelayHistogram {
    async fn scrape(cluster: &Cluster) -> DelayHistogram {
        let mut h = DelayHistogram::default();
        for node in &cluster.nodes {
            let url = format!("http://127.0.0.1:{}/metrics", node.port);
            let text = cluster.client.get(url).send().await.expect("metrics").text().await.expect("metrics text");
            for line in text.lines() {
                let Some((name, value)) = line.rsplit_once(' ') else { continue };
                let value: f64 = value.parse().unwrap_or(0.0);
                if let Some(le) = name.strip_prefix("moltflow_revocation_delay_seconds_bucket{le=\"") {
                    let le: f64 = le.trim_end_matches("\"}").parse().unwrap_or(f64::INFINITY);
                    match h.buckets.iter_mut().find(|(b, _)| *b == le) {
                        Some((_, n)) => *n += value as u64,
                        None => h.buckets.push((le, value as u64)),
                    }
                } else if name == "moltflow_revocation_delay_seconds_sum" {
                    h.sum += value;
                } else if name == "moltflow_revocation_delay_seconds_count" {
                    h.count += value as u64;
                }
            }
        }
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        h
    }

    /// The upper bound of the bucket holding quantile `q`.
    fn quantile_bound(&self, q: f64) -> f64 {
        let rank = (self.count as f64 * q).ceil() as u64;
        self.buckets.iter().find(|(_, n)| *n >= rank).map_or(f64::INFINITY, |(le, _)| *le)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_revocations_quota_and_durability() {
    let Some(cluster) = Cluster::start(3).await else { return };
    let n = cluster.nodes.len();

    // --- Revoked keys: timed, the revoking node taking turns.
    let (owner, _, _) = cluster.register(0, "owner@example.com").await;
    let rounds: usize =
        std::env::var("MOLTFLOW_TEST_REVOCATION_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(12);
    let (mut latencies, mut round_trips) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let revoker = round % n;
        let (id, raw) = cluster.create_key(revoker, &owner, &["account:read"]).await;
        for node in 0..n {
            let started = Instant::now();
            assert_eq!(cluster.me(node, &raw).await, 200, "a new key works on node {node}");
            round_trips.push(started.elapsed());
        }
        cluster.ok(revoker, "DELETE", &format!("/api-keys/{id}"), Some(&owner), None).await;
        latencies.extend(cluster.refused_elsewhere(revoker, &raw, Instant::now(), "a revoked key").await);
    }
    latencies.sort();
    round_trips.sort();
    eprintln!(
        "revocation across nodes ({} samples, from the revoking answer to the first 401 back from another node): \
         p50 {:?}, p99 {:?}, max {:?}; one /auth/me round trip meanwhile: p50 {:?}, p99 {:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        percentile(&round_trips, 0.5),
        percentile(&round_trips, 0.99),
    );

    let delays = DelayHistogram::scrape(&cluster).await;
    assert!(delays.count >= latencies.len() as u64, "the other nodes heard {} announcements", delays.count);
    eprintln!(
        "announcement to applied on another node ({} messages, /metrics): mean {:.2} ms, p50 <= {} ms, p99 <= {} ms",
        delays.count,
        delays.sum * 1000.0 / delays.count as f64,
        delays.quantile_bound(0.5) * 1000.0,
        delays.quantile_bound(0.99) * 1000.0
    );

    // --- A rotated key's old secret.
    let (id, old) = cluster.create_key(1, &owner, &["account:read"]).await;
    for node in 0..n {
        assert_eq!(cluster.me(node, &old).await, 200);
    }
    cluster.ok(2, "POST", &format!("/api-keys/{id}/rotate"), Some(&owner), Some(json!({}))).await;
    cluster.refused_elsewhere(2, &old, Instant::now(), "a rotated key's old secret").await;

    // --- Logout of one session, then of all sessions of a user.
    let session = cluster.login(1, "owner@example.com").await;
    for node in 0..n {
        assert_eq!(cluster.me(node, &session).await, 200);
    }
    assert_eq!(cluster.call(1, "POST", "/auth/logout", Some(&session), Some(json!({}))).await.map(|r| r.0), Some(204));
    cluster.refused_elsewhere(1, &session, Instant::now(), "a logged-out session").await;
    assert_eq!(cluster.me(0, &owner).await, 200, "the owner's other session lives on");

    let (_, member_id, member_tenant) = cluster.register(2, "member@example.com").await;
    let owner_tenant =
        cluster.ok(0, "GET", "/auth/me", Some(&owner), None).await["tenant_id"].as_str().unwrap().to_owned();
    cluster.join(&member_id, &member_tenant, &owner_tenant, "member").await;
    let (first, second) = (cluster.login(0, "member@example.com").await, cluster.login(1, "member@example.com").await);
    for node in 0..n {
        assert_eq!((cluster.me(node, &first).await, cluster.me(node, &second).await), (200, 200));
    }
    let all = Some(json!({"all_sessions": true}));
    assert_eq!(cluster.call(2, "POST", "/auth/logout", Some(&first), all).await.map(|r| r.0), Some(204));
    let since = Instant::now();
    cluster.refused_elsewhere(2, &first, since, "a session ended by logout everywhere").await;
    cluster.refused_elsewhere(2, &second, since, "another session ended by logout everywhere").await;

    // --- A removed member: sessions and keys.
    let member = cluster.login(2, "member@example.com").await;
    let (_, member_key) = cluster.create_key(2, &member, &["account:read"]).await;
    for node in 0..n {
        assert_eq!((cluster.me(node, &member).await, cluster.me(node, &member_key).await), (200, 200));
    }
    cluster.ok(0, "DELETE", &format!("/tenant/members/{member_id}"), Some(&owner), None).await;
    let since = Instant::now();
    cluster.refused_elsewhere(0, &member, since, "a removed member's session").await;
    cluster.refused_elsewhere(0, &member_key, since, "a removed member's key").await;

    // --- The monthly quota (free plan: 50 messages) under concurrent consumes on every node.
    let (quota_owner, _, quota_tenant) = cluster.register(1, "quota@example.com").await;
    let (_, quota_key) = cluster.create_key(1, &quota_owner, &["usage:read", "usage:write"]).await;
    let cluster = Arc::new(cluster);
    let consumers: Vec<_> = (0..12)
        .map(|w| {
            let (cluster, key) = (cluster.clone(), quota_key.clone());
            tokio::spawn(async move {
                let mut granted = 0;
                for i in 0..10 {
                    let body = json!({"metric": "messages", "quantity": 1, "idempotency_key": format!("q-{w}-{i}")});
                    match cluster.call(w % 3, "POST", "/usage/consume", Some(&key), Some(body)).await {
                        Some((200, _)) => granted += 1,
                        Some((429, b)) => assert_eq!(b["code"], "quota_exceeded", "{b}"),
                        other => panic!("consume: {other:?}"),
                    }
                }
                granted
            })
        })
        .collect();
    let mut granted = 0;
    for consumer in consumers {
        granted += consumer.await.expect("consumer");
    }
    assert_eq!(granted, 50, "120 consumes of 1 against a quota of 50 granted {granted}");
    let stored = cluster
        .store
        .scalar_i64(&format!("SELECT COUNT(*) FROM usage_consumptions WHERE tenant_id = '{quota_tenant}'"))
        .await
        .unwrap();
    assert_eq!(stored, 50);

    // --- SIGKILL mid-load: every acknowledged event and consume is in the database.
    let (load_owner, _, load_tenant) = cluster.register(0, "load@example.com").await;
    cluster
        .store
        .execute_raw(&format!("UPDATE tenants SET plan_id = 'business' WHERE id = '{load_tenant}'"))
        .await
        .unwrap();
    // A key read after the plan change carries the new plan.
    let (_, load_key) = cluster.create_key(0, &load_owner, &["usage:write"]).await;
    let acked_events = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked_consumes = Arc::new(Mutex::new(Vec::<String>::new()));
    // Requests each node acknowledged: what the test waits on, instead of spans of time.
    let acked_by: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let victim = 2;
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (cluster, key, stop) = (cluster.clone(), load_key.clone(), stop.clone());
            let (events, consumes, acked_by) = (acked_events.clone(), acked_consumes.clone(), acked_by.clone());
            tokio::spawn(async move {
                let node = w % 3;
                for round in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let acked = if round % 2 == 0 {
                        let ids: Vec<String> = (0..20).map(|i| format!("w{w}-r{round}-e{i}")).collect();
                        let batch: Vec<Value> =
                            ids.iter().map(|id| json!({"id": id, "metric": "messages", "quantity": 1})).collect();
                        match cluster
                            .call(node, "POST", "/usage/events", Some(&key), Some(json!({"events": batch})))
                            .await
                        {
                            Some((202, _)) => {
                                events.lock().unwrap().extend(ids);
                                true
                            }
                            Some((s, b)) if node != victim => panic!("events on node {node}: {s} {b}"),
                            _ => false,
                        }
                    } else {
                        let idem = format!("w{w}-r{round}");
                        let body = json!({"metric": "messages", "quantity": 1, "idempotency_key": idem});
                        match cluster.call(node, "POST", "/usage/consume", Some(&key), Some(body)).await {
                            Some((200, _)) => {
                                consumes.lock().unwrap().push(idem);
                                true
                            }
                            Some((s, b)) if node != victim => panic!("consume on node {node}: {s} {b}"),
                            _ => false,
                        }
                    };
                    if !acked && node == victim {
                        break; // the victim is gone
                    }
                    if acked {
                        acked_by[node].fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let acked = || acked_by.iter().map(|a| a.load(Ordering::SeqCst)).collect::<Vec<_>>();
    // The load runs on every node: each has acknowledged twenty requests.
    eventually_async(Duration::from_secs(30), "twenty acknowledged requests on each node", async || {
        let seen = acked();
        if seen.iter().all(|a| *a >= 20) { Ok(()) } else { Err(seen) }
    })
    .await;
    // SIGKILL the victim while the load runs (the process handle is shared: kill by pid).
    let pid = cluster.nodes[victim].child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    // The load goes on: the victim's workers meet its death and stop, the survivors acknowledge
    // ten more each.
    let at_kill = acked();
    eventually_async(
        Duration::from_secs(30),
        "the victim's workers to stop and ten more on each survivor",
        async || {
            let stopped = workers.iter().enumerate().filter(|(w, _)| w % 3 == victim).all(|(_, w)| w.is_finished());
            let more: Vec<usize> =
                (0..n).filter(|node| *node != victim).map(|node| acked()[node] - at_kill[node]).collect();
            if stopped && more.iter().all(|m| *m >= 10) { Ok(()) } else { Err((stopped, more)) }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let by_victim = acked_by[victim].load(Ordering::SeqCst);
    assert!(by_victim >= 20, "the killed node acknowledged {by_victim} requests before it died");
    let events = std::mem::take(&mut *acked_events.lock().unwrap());
    let consumes = std::mem::take(&mut *acked_consumes.lock().unwrap());
    let lost = missing(&cluster.store, "usage_events", "event_id", &load_tenant, &events).await;
    assert_eq!(lost, 0, "{lost} of {} acknowledged events lost", events.len());
    let lost = missing(&cluster.store, "usage_consumptions", "idempotency_key", &load_tenant, &consumes).await;
    assert_eq!(lost, 0, "{lost} of {} acknowledged consumes lost", consumes.len());
    eprintln!(
        "SIGKILL mid-load: {} events and {} consumes acknowledged ({by_victim} answers by the killed node), all stored",
        events.len(),
        consumes.len()
    );
    // The survivors still serve.
    for node in 0..victim {
        assert_eq!(cluster.me(node, &load_owner).await, 200);
    }
}

/// How many of `ids` are not in `column` of `table` for the tenant (ids are unique per tenant,
/// so a batch is all there when it counts its own length).
async fn missing(store: &Store, table: &str, column: &str, tenant: &str, ids: &[String]) -> usize {
    let mut missing = 0;
    for batch in ids.chunks(500) {
        let list: Vec<String> = batch.iter().map(|id| format!("'{id}'")).collect();
        let sql =
            format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = '{tenant}' AND {column} IN ({})", list.join(","));
        let found = store.scalar_i64(&sql).await.expect("count") as usize;
        missing += batch.len() - found;
    }
    missing
}
