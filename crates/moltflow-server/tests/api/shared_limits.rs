//! Limits shared by several nodes through Redis (API.md §9): two apps over one database and one
//! Redis, as two `moltflow serve` behind a load balancer, allow together what one node allows,
//! answer with the same headers, fall back to per-node limits while Redis is away (ready all the
//! while) and share again once it is back. Needs a real Redis in `MOLTFLOW_TEST_REDIS_URL`; each
//! test writes under a key prefix of its own, so they run in parallel.

use std::time::Duration;

use moltflow_core::api_key::new_raw_key;
use reqwest::Method;
use serde_json::json;

use crate::common::{PASSWORD, Resp, SharedRedis, TestApp, eventually, skipped, token};
use crate::tcp_proxy::TcpProxy;

/// The test Redis with a fresh key prefix, or `None` (the test is skipped, saying why).
fn test_redis() -> Option<SharedRedis> {
    match std::env::var("MOLTFLOW_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let prefix = format!("moltflow-test:{}:", uuid::Uuid::new_v4().simple());
            // A loaded test machine may take more than the production 50 ms; an outage in these
            // tests is a cut connection, noticed at once whatever the timeout.
            Some(SharedRedis { url, prefix, timeout: Duration::from_secs(2) })
        }
        _ => {
            skipped("Redis: MOLTFLOW_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379");
            None
        }
    }
}

/// Two nodes over one database sharing `redis`.
async fn two_nodes(overrides: &[(&str, &str)], redis: &SharedRedis) -> (TestApp, TestApp) {
    let a = TestApp::spawn_node(overrides, None, Some(redis)).await;
    let b = TestApp::spawn_node(overrides, Some(&a), Some(redis)).await;
    (a, b)
}

/// Every node's clock moves together, as real time does.
fn advance(nodes: &[&TestApp], by: Duration) {
    for node in nodes {
        node.state.clock.advance(by);
    }
}

async fn me_with_key(app: &TestApp, key: &str) -> Resp {
    app.with_key(Method::GET, "/auth/me", key, None).await
}

/// What a client sees of a rate-limited answer (Retry-After only as present or not: it counts
/// seconds of real time).
fn seen(r: &Resp) -> (u16, String, [Option<String>; 3], bool) {
    let h = |n: &str| r.header(n).map(str::to_owned);
    (
        r.status,
        r.code().to_owned(),
        [h("ratelimit-limit"), h("ratelimit-remaining"), h("ratelimit-reset")],
        r.header("retry-after").is_some(),
    )
}

async fn redis_connection(redis: &SharedRedis) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url.as_str()).expect("redis url");
    client.get_multiplexed_async_connection().await.expect("connect to the test Redis")
}

/// The keys this test wrote, each with its time to live in milliseconds.
async fn keys_with_ttl(redis: &SharedRedis) -> Vec<(String, i64)> {
    let mut conn = redis_connection(redis).await;
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}*", redis.prefix)).query_async(&mut conn).await.expect("KEYS");
    let mut out = Vec::new();
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.expect("PTTL");
        out.push((key, ttl));
    }
    out
}

async fn key_of_a_free_tenant(app: &TestApp, email: &str) -> String {
    let owner = app.register(email).await;
    token(&app.create_key(&token(&owner, "access_token"), &["account:read"]).await, "raw_key")
}

#[tokio::test]
async fn a_free_key_gets_its_allowance_once_across_two_nodes_with_the_answers_of_one() {
    let Some(redis) = test_redis() else { return };
    let (a, b) = two_nodes(&[], &redis).await;
    let key = key_of_a_free_tenant(&a, "owner@example.com").await;

    // Alternating between the nodes, as a load balancer does, until the first refusal: 60 a
    // minute in all, not 60 each (per-node limits would grant about 120).
    let started = std::time::Instant::now();
    let mut shared = Vec::new();
    while shared.last().is_none_or(|r: &Resp| r.status == 200) && shared.len() < 200 {
        shared.push(me_with_key(if shared.len() % 2 == 0 { &a } else { &b }, &key).await);
    }
    let elapsed = started.elapsed();
    let granted = shared.len() - 1;
    // GCRA gives one request back each second: a slow machine may see one more per second spent.
    if elapsed < Duration::from_secs(1) {
        assert_eq!(granted, 60, "in {elapsed:?}");
    } else {
        assert!((60..=60 + elapsed.as_secs() as usize).contains(&granted), "{granted} in {elapsed:?}");
    }
    let refused = shared.last().unwrap();
    refused.assert(429, "rate_limited");
    assert_eq!(refused.body["detail"], "Rate limit of 60 requests a minute exceeded");
    assert!(refused.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    me_with_key(&a, &key).await.assert(429, "rate_limited");

    // One node without Redis answers the same sequence with the same headers and bodies.
    let alone = TestApp::spawn().await;
    let alone_key = key_of_a_free_tenant(&alone, "owner@example.com").await;
    let started = std::time::Instant::now();
    let mut single = Vec::new();
    for _ in 0..shared.len() {
        single.push(me_with_key(&alone, &alone_key).await);
    }
    if elapsed < Duration::from_secs(1) && started.elapsed() < Duration::from_secs(1) {
        let shared_seen: Vec<_> = shared.iter().map(seen).collect();
        let single_seen: Vec<_> = single.iter().map(seen).collect();
        assert_eq!(shared_seen, single_seen);
        assert_eq!(shared.last().unwrap().body["detail"], single.last().unwrap().body["detail"]);
    }

    // A minute later (moved on the clocks, not waited for) the allowance is whole again.
    advance(&[&a, &b], Duration::from_secs(60));
    let again = me_with_key(&b, &key).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("ratelimit-remaining"), Some("59"));

    // Nothing is kept for ever, and nothing in a key name identifies a person.
    let keys = keys_with_ttl(&redis).await;
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|(_, ttl)| (1..=60_001).contains(ttl)), "{keys:?}");
}

#[tokio::test]
async fn five_wrong_passwords_spread_over_two_nodes_lock_the_account_on_both() {
    let Some(redis) = test_redis() else { return };
    let (a, b) = two_nodes(&[], &redis).await;
    a.register("Ana.Lima@example.com").await;
    let checks_before = a.state.hasher.checks() + b.state.hasher.checks();
    for i in 0..5 {
        let node = if i % 2 == 0 { &a } else { &b };
        node.login("ana.lima@example.com", "wrong-password-123").await.assert(401, "invalid_credentials");
    }
    // The sixth attempt is refused on either node, the right password too, without a check.
    a.login("ana.lima@example.com", "wrong-password-123").await.assert(429, "login_locked");
    let locked = b.login("ana.lima@example.com", PASSWORD).await;
    locked.assert(429, "login_locked");
    assert_eq!(locked.body["detail"], "Too many failed logins for this account; try again later");
    let retry: u64 = locked.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((880..=900).contains(&retry), "retry-after {retry}");
    assert_eq!(a.state.hasher.checks() + b.state.hasher.checks() - checks_before, 5, "passwords checked");

    // The key names a hash of the address, never the address, and lives no longer than the window.
    let keys = keys_with_ttl(&redis).await;
    let lockouts: Vec<_> = keys.iter().filter(|(k, _)| k.contains(":lockout:")).collect();
    assert_eq!(lockouts.len(), 1, "{keys:?}");
    assert!(keys.iter().all(|(k, _)| !k.to_lowercase().contains("ana.lima")), "{keys:?}");
    assert!((1..=900_000).contains(&lockouts[0].1), "{keys:?}");

    // Fifteen minutes later, on the clocks, either node signs the account in; that clears the count.
    advance(&[&a, &b], Duration::from_secs(15 * 60));
    let signed_in = b.login("ana.lima@example.com", PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    for _ in 0..5 {
        a.login("ana.lima@example.com", "wrong-password-123").await.assert(401, "invalid_credentials");
    }
    b.login("ana.lima@example.com", "wrong-password-123").await.assert(429, "login_locked");
}

#[tokio::test]
async fn per_network_throttles_are_shared_sign_ups_and_failed_authentications() {
    let Some(redis) = test_redis() else { return };
    // A tenth of the rates: 6 sign-ups and 10 failed authentications a minute per network.
    let (a, b) = two_nodes(&[("rate_limit_scale", "0.1")], &redis).await;
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        node.register(&format!("user{i}@example.com")).await;
    }
    let body = json!({"email": "user7@example.com", "password": PASSWORD, "full_name": "Seventh"});
    let refused = a.post("/auth/register", body.clone(), None).await;
    refused.assert(429, "rate_limited");
    assert_eq!(refused.body["detail"], "Too many sign-ups from this address");
    assert!(refused.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    b.post("/auth/register", body.clone(), None).await.assert(429, "rate_limited");
    advance(&[&a, &b], Duration::from_secs(60));
    assert_eq!(b.post("/auth/register", body, None).await.status, 201);

    // Guessed keys: ten failures in all, then refused on both nodes without a lookup.
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        me_with_key(node, &new_raw_key()).await.assert(401, "invalid_api_key");
    }
    let lookups = a.state.auth_cache.key_lookups() + b.state.auth_cache.key_lookups();
    for node in [&a, &b] {
        let refused = me_with_key(node, &new_raw_key()).await;
        refused.assert(429, "rate_limited");
        assert_eq!(refused.body["detail"], "Too many failed authentications from this network");
    }
    assert_eq!(a.state.auth_cache.key_lookups() + b.state.auth_cache.key_lookups(), lookups);
}

/// A proxy in front of the test Redis, and the same Redis reached through it.
async fn behind_a_proxy(redis: &SharedRedis) -> (TcpProxy, SharedRedis) {
    let target = reqwest::Url::parse(&redis.url).expect("MOLTFLOW_TEST_REDIS_URL");
    let target = format!("{}:{}", target.host_str().unwrap_or("127.0.0.1"), target.port().unwrap_or(6379));
    let proxy = TcpProxy::start(tokio::net::lookup_host(&target).await.unwrap().next().unwrap()).await;
    let via_proxy = SharedRedis { url: format!("redis://{}", proxy.addr), ..redis.clone() };
    (proxy, via_proxy)
}

/// Polls (no fixed sleep) until both nodes see Redis as `up`.
async fn wait_for_redis(nodes: &[&TestApp], up: bool) {
    let what = format!("both nodes to see Redis {}", if up { "up" } else { "down" });
    eventually(Duration::from_secs(10), what, async || {
        let seen: Vec<bool> =
            nodes.iter().map(|n| n.state.rate_limits.shared.as_ref().expect("shared limits").is_up()).collect();
        if seen.iter().all(|s| *s == up) { Ok(()) } else { Err(seen) }
    })
    .await;
}

/// `node`'s `/metrics` once it shows `moltflow_redis_up` at `up`. The handler sets the gauge
/// from the node's own state before rendering, but the metrics registry is one per process and
/// the suite runs many nodes in one process: another node may set the gauge in between. A few
/// reads give this node's answer; in production a process is one node.
async fn metrics_showing_redis(node: &TestApp, up: bool) -> String {
    let want = if up { 1.0 } else { 0.0 };
    eventually(Duration::from_secs(10), format!("moltflow_redis_up {want} in /metrics"), async || {
        let text =
            node.send(node.client.get(format!("{}/metrics", node.base))).await.body.as_str().unwrap_or("").to_owned();
        if metric(&text, "moltflow_redis_up") == Some(want) {
            Ok(text)
        } else {
            Err(metric(&text, "moltflow_redis_up"))
        }
    })
    .await
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(name) && !l.starts_with('#')).and_then(|l| l.split(' ').nth(1)?.parse().ok())
}

#[tokio::test]
async fn without_redis_each_node_counts_alone_stays_ready_and_shares_again_once_redis_is_back() {
    let Some(redis) = test_redis() else { return };
    let (proxy, via_proxy) = behind_a_proxy(&redis).await;
    // Four requests a minute, so that every step counts exactly.
    let (a, b) = two_nodes(&[("rate_limits", "free=4")], &via_proxy).await;
    wait_for_redis(&[&a, &b], true).await;
    let first = key_of_a_free_tenant(&a, "first@example.com").await;
    for node in [&a, &b, &a, &b] {
        assert_eq!(me_with_key(node, &first).await.status, 200);
    }
    me_with_key(&a, &first).await.assert(429, "rate_limited");
    me_with_key(&b, &first).await.assert(429, "rate_limited");

    // Redis goes away: each node decides alone (its own four), answers at once, stays ready.
    proxy.cut();
    let second = key_of_a_free_tenant(&a, "second@example.com").await;
    for node in [&a, &b] {
        for _ in 0..4 {
            let started = std::time::Instant::now();
            let r = me_with_key(node, &second).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.header("ratelimit-limit"), Some("4"));
            assert!(started.elapsed() < Duration::from_secs(1), "a request waited {:?}", started.elapsed());
        }
        me_with_key(node, &second).await.assert(429, "rate_limited");
        assert_eq!(node.send(node.client.get(format!("{}/readyz", node.base))).await.status, 200);
    }
    wait_for_redis(&[&a, &b], false).await;
    let metrics = metrics_showing_redis(&a, false).await;
    assert_eq!(metric(&metrics, "moltflow_redis_up"), Some(0.0), "{metrics}");
    assert!(metric(&metrics, "moltflow_redis_fallbacks_total").is_some_and(|n| n >= 8.0), "{metrics}");

    // Redis is back: found by the probe, without a restart; limits are shared again.
    proxy.restore();
    wait_for_redis(&[&a, &b], true).await;
    let metrics = metrics_showing_redis(&a, true).await;
    assert_eq!(metric(&metrics, "moltflow_redis_up"), Some(1.0), "{metrics}");
    let third = key_of_a_free_tenant(&b, "third@example.com").await;
    for node in [&a, &b, &a, &b] {
        assert_eq!(me_with_key(node, &third).await.status, 200);
    }
    me_with_key(&a, &third).await.assert(429, "rate_limited");
    me_with_key(&b, &third).await.assert(429, "rate_limited");
}

#[tokio::test]
async fn a_redis_that_hangs_costs_a_request_at_most_the_timeout_then_nothing() {
    let Some(redis) = test_redis() else { return };
    let (proxy, via_proxy) = behind_a_proxy(&redis).await;
    // A short timeout (production has 50 ms; a busy test machine needs some slack so that the
    // shared phases are not timed out by mistake): this test is about waiting for Redis.
    let via_proxy = SharedRedis { timeout: Duration::from_millis(250), ..via_proxy };
    let (a, b) = two_nodes(&[("rate_limits", "free=4")], &via_proxy).await;
    wait_for_redis(&[&a, &b], true).await;
    let key = key_of_a_free_tenant(&a, "owner@example.com").await;

    proxy.stall();
    // The first request waits for the timeout and is decided by the node; later ones do not wait.
    for node in [&a, &b] {
        for _ in 0..4 {
            let started = std::time::Instant::now();
            let r = me_with_key(node, &key).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(started.elapsed() < Duration::from_secs(1), "a request waited {:?}", started.elapsed());
        }
        me_with_key(node, &key).await.assert(429, "rate_limited");
    }
    wait_for_redis(&[&a, &b], false).await;
    assert_eq!(a.send(a.client.get(format!("{}/readyz", a.base))).await.status, 200);

    proxy.restore();
    wait_for_redis(&[&a, &b], true).await;
    let fresh = key_of_a_free_tenant(&b, "fresh@example.com").await;
    for node in [&a, &b, &a, &b] {
        assert_eq!(me_with_key(node, &fresh).await.status, 200);
    }
    me_with_key(&b, &fresh).await.assert(429, "rate_limited");
}
