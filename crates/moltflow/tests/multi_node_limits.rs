//! Three `moltflow serve` processes over one database and one Redis, requests spread over them as
//! a load balancer spreads them (issue 15): the per-principal rate limit and the sign-in lockout
//! hold for the three together, as for one node. Needs `MOLTFLOW_TEST_REDIS_URL`; runs on
//! PostgreSQL when `MOLTFLOW_TEST_DATABASE_URL` is set (a schema of its own), else on one SQLite
//! file shared by the three processes.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use moltflow_store::testing::postgres::TestDatabase;
use moltflow_store::testing::skipped;
use serde_json::json;
use support::{Node, eventually, free_port, http, moltflow};

const PASSWORD: &str = "sunny-tulip-harbor-42";

fn start(dir: &std::path::Path, database: &str, redis: &str, prefix: &str) -> Node {
    let port = free_port();
    let child = moltflow()
        .arg("serve")
        .current_dir(dir)
        .env("MOLTFLOW_BIND", format!("127.0.0.1:{port}"))
        .env("MOLTFLOW_DATABASE_URL", database)
        .env("MOLTFLOW_REDIS_URL", redis)
        .env("MOLTFLOW_REDIS_KEY_PREFIX", prefix)
        .env("MOLTFLOW_LOG", "error")
        .env("MOLTFLOW_ARGON2_MEMORY_KIB", "256")
        .env("MOLTFLOW_ARGON2_ITERATIONS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moltflow serve");
    let node = Node { port, child };
    eventually(Duration::from_secs(60), format!("the node on port {port} to be ready"), || {
        let ready = http(port, "GET", "/readyz", &[], None).map(|(s, _, _)| s);
        if ready == Some(200) { Ok(()) } else { Err(ready) }
    });
    node
}

/// The database the three share, migrated (by `moltflow migrate`) before they start, and on
/// PostgreSQL the fresh database it lives in (dropped when the test lets go of it).
async fn database(dir: &std::path::Path) -> (String, Option<TestDatabase>) {
    let (url, copy) = match moltflow_store::testing::postgres::database_url() {
        Some(base) => {
            let copy = TestDatabase::new(&base).await.expect("a fresh PostgreSQL database");
            let url = match copy.schema() {
                Some(schema) => {
                    let sep = if copy.url().contains('?') { '&' } else { '?' };
                    format!("{}{sep}options=-c%20search_path%3D{schema}", copy.url())
                }
                None => copy.url().to_owned(),
            };
            (url, Some(copy))
        }
        None => (format!("sqlite://{}", dir.join("shared.db").display()), None),
    };
    let migrated = moltflow().arg("migrate").env("MOLTFLOW_DATABASE_URL", &url).output().expect("migrate");
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    (url, copy)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_share_the_rate_limit_and_the_sign_in_lockout() {
    let Ok(redis) = std::env::var("MOLTFLOW_TEST_REDIS_URL") else {
        return skipped("Redis: MOLTFLOW_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379");
    };
    let dir = std::env::temp_dir().join(format!("moltflow-multi-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (url, _database) = database(&dir).await;
    let prefix = format!("moltflow-test:multi-{}:", std::process::id());
    let nodes: Vec<Node> = (0..3).map(|_| start(&dir, &url, &redis, &prefix)).collect();
    let port = |i: usize| nodes[i % nodes.len()].port;

    let register = json!({"email": "owner@example.com", "password": PASSWORD, "full_name": "Owner"});
    let (status, _, pair) = http(port(0), "POST", "/api/v2/auth/register", &[], Some(&register)).unwrap();
    assert_eq!(status, 201, "{pair}");
    let bearer = format!("Bearer {}", pair["access_token"].as_str().expect("access token"));
    let create = json!({"name": "load", "scopes": ["account:read"]});
    let (status, _, key) =
        http(port(1), "POST", "/api/v2/api-keys", &[("Authorization", &bearer)], Some(&create)).unwrap();
    assert_eq!(status, 201, "{key}");
    let key = key["raw_key"].as_str().expect("raw key").to_owned();

    // 90 requests of a free-plan key (60 a minute), round robin over the three nodes, three at once.
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let key = key.clone();
                let ports: Vec<u16> = (0..3).map(port).collect();
                s.spawn(move || {
                    (0..30)
                        .map(|i| {
                            let p = ports[(w + i) % 3];
                            http(p, "GET", "/api/v2/auth/me", &[("X-API-Key", &key)], None).map_or(0, |(s, _, _)| s)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let granted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(granted + refused, 90, "{statuses:?}");
    // One request comes back each second (GCRA): a slow run may see one more per second spent.
    assert!((60..=60 + elapsed.as_secs() as usize).contains(&granted), "{granted} granted in {elapsed:?}");

    // Five wrong passwords, one node after the other: the account is locked on every node.
    for i in 0..5 {
        let wrong = json!({"email": "owner@example.com", "password": "wrong-password-123"});
        let (status, _, body) = http(port(i), "POST", "/api/v2/auth/login", &[], Some(&wrong)).unwrap();
        assert_eq!(status, 401, "{body}");
    }
    let right = json!({"email": "owner@example.com", "password": PASSWORD});
    for i in 0..3 {
        let (status, head, body) = http(port(i), "POST", "/api/v2/auth/login", &[], Some(&right)).unwrap();
        assert_eq!((status, body["code"].as_str()), (429, Some("login_locked")), "node {i}: {body}");
        assert!(head.contains("\r\nretry-after: "), "{head}");
    }
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
