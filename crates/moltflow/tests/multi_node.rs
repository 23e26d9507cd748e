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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "multi_node/cluster.rs"]
mod cluster;

use cluster::{Cluster, DelayHistogram, missing, percentile};
use support::eventually_async;

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
