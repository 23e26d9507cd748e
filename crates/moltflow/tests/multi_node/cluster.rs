//! The three-node cluster of the multi-node test: `moltflow serve` processes over one fresh
//! PostgreSQL database, requests to any of them, the revocation checks across them, and the
//! `/metrics` histogram of how soon they heard.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use moltflow_store::Store;
use moltflow_store::testing::postgres::TestDatabase;
use moltflow_store::testing::skipped;
use serde_json::{Value, json};

use crate::support::{Node, eventually_async, eventually_async_every, free_port, moltflow};

/// How soon every other node must refuse what one node revoked (API.md §5).
const WITHIN: Duration = Duration::from_millis(100);
/// The signing key every node shares (a base64 Ed25519 seed).
const SIGNING_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
const PASSWORD: &str = "sunny-tulip-harbor-42";

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub client: reqwest::Client,
    pub store: Store,
    pub dir: PathBuf,
    /// The database the nodes share (dropped after them).
    pub _database: TestDatabase,
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
    pub async fn start(n: usize) -> Option<Cluster> {
        let Some(base) = moltflow_store::testing::postgres::database_url() else {
            skipped("PostgreSQL: MOLTFLOW_TEST_DATABASE_URL (.ci/run sets it)");
            return None;
        };
        moltflow_app::tls::install_crypto_provider();
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

    pub async fn wait_ready(&mut self, i: usize) {
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

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("node{i}.log"))).unwrap_or_default()
    }

    pub fn url(&self, node: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}/api/v2{path}", self.nodes[node].port)
    }

    /// `(status, body)`; a node that is gone answers `None`.
    pub async fn call(
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

    pub async fn ok(&self, node: usize, method: &str, path: &str, auth: Option<&str>, body: Option<Value>) -> Value {
        let (status, body) = self.call(node, method, path, auth, body).await.expect("node answers");
        assert!((200..300).contains(&status), "{method} {path} on node {node}: {status} {body}");
        body
    }

    pub async fn me(&self, node: usize, auth: &str) -> u16 {
        self.call(node, "GET", "/auth/me", Some(auth), None).await.expect("node answers").0
    }

    /// Registers an owner (on `node`); returns `(access token, user id, tenant id)`.
    pub async fn register(&self, node: usize, email: &str) -> (String, String, String) {
        let body = json!({"email": email, "password": PASSWORD, "full_name": "Node Test"});
        let pair = self.ok(node, "POST", "/auth/register", None, Some(body)).await;
        let s = |v: &Value| v.as_str().expect("string").to_owned();
        (s(&pair["access_token"]), s(&pair["user"]["id"]), s(&pair["user"]["tenant_id"]))
    }

    pub async fn login(&self, node: usize, email: &str) -> String {
        let body = json!({"email": email, "password": PASSWORD});
        self.ok(node, "POST", "/auth/login", None, Some(body)).await["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn create_key(&self, node: usize, token: &str, scopes: &[&str]) -> (String, String) {
        let key = self.ok(node, "POST", "/api-keys", Some(token), Some(json!({"name": "k", "scopes": scopes}))).await;
        (key["id"].as_str().expect("id").to_owned(), key["raw_key"].as_str().expect("raw key").to_owned())
    }

    /// Moves a registered user into `tenant` with `role` (as an accepted invitation would).
    pub async fn join(&self, user: &str, own_tenant: &str, tenant: &str, role: &str) {
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
    pub async fn refused_elsewhere(
        &self,
        revoker: usize,
        credential: &str,
        since: Instant,
        what: &str,
    ) -> Vec<Duration> {
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
pub struct DelayHistogram {
    /// `(upper bound, cumulative count)`, ascending.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl DelayHistogram {
    pub async fn scrape(cluster: &Cluster) -> DelayHistogram {
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
    pub fn quantile_bound(&self, q: f64) -> f64 {
        let rank = (self.count as f64 * q).ceil() as u64;
        self.buckets.iter().find(|(_, n)| *n >= rank).map_or(f64::INFINITY, |(le, _)| *le)
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How many of `ids` are not in `column` of `table` for the tenant (ids are unique per tenant,
/// so a batch is all there when it counts its own length).
pub async fn missing(store: &Store, table: &str, column: &str, tenant: &str, ids: &[String]) -> usize {
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
