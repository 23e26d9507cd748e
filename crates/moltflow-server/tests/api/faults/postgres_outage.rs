//! PostgreSQL goes away under load and comes back. The machine's PostgreSQL is shared, so it is
//! never stopped: the service reaches it through a TCP proxy of this test, which is cut (every
//! live connection dropped, new ones refused, as a stopped server does) and restored.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

use crate::common::{NEEDS_POSTGRES, Resp, TestApp, eventually, owner, set_plan, skipped};

/// A TCP proxy in front of `upstream` that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    pipes: Arc<Mutex<Vec<AbortHandle>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mut proxy = Proxy { addr, upstream, pipes: Arc::default(), acceptor: None };
        proxy.acceptor = Some(tokio::spawn(accept(listener, upstream, proxy.pipes.clone())));
        proxy
    }

    /// Drops every live connection (both ends) and stops listening: connecting is refused.
    fn cut(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
        }
        for pipe in self.pipes.lock().expect("pipes").drain(..) {
            pipe.abort();
        }
    }

    /// Listens again on the same port.
    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind proxy");
        self.acceptor = Some(tokio::spawn(accept(listener, self.upstream, self.pipes.clone())));
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, pipes: Arc<Mutex<Vec<AbortHandle>>>) {
    while let Ok((mut client, _)) = listener.accept().await {
        let pipe = tokio::spawn(async move {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        pipes.lock().expect("pipes").push(pipe.abort_handle());
    }
}

/// One answer of the load, with when it was sent and how long it took.
struct Answer {
    kind: usize,
    sent: Instant,
    took: Duration,
    status: u16,
    code: String,
}

/// What the load wrote and had acknowledged, and every answer.
#[derive(Default)]
struct Ledger {
    events: Vec<String>,
    consumes: Vec<String>,
    keys: Vec<String>,
    answers: Vec<Answer>,
}

#[derive(Clone, Copy)]
enum Write {
    Event,
    Consume,
    Key,
}

/// Sends writes of one kind, one after another, until `stop`; records each answer.
async fn load(
    app: Arc<TestApp>,
    token: String,
    (kind, worker): (Write, usize),
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = format!("{}-{worker}-{n}", ["e", "c", "k"][kind as usize]);
        let sent = Instant::now();
        let r: Resp = match kind {
            Write::Event => {
                let body = json!({"events": [{"id": id, "metric": "messages", "quantity": 1}]});
                app.post("/usage/events", body, Some(&token)).await
            }
            Write::Consume => {
                let body = json!({"metric": "ai_replies", "quantity": 1, "idempotency_key": id});
                app.post("/usage/consume", body, Some(&token)).await
            }
            Write::Key => app.post("/api-keys", json!({"name": id, "scopes": ["usage:read"]}), Some(&token)).await,
        };
        let mut ledger = ledger.lock().expect("ledger");
        if (200..300).contains(&r.status) {
            match kind {
                Write::Event => ledger.events.push(id),
                Write::Consume => ledger.consumes.push(id),
                Write::Key => ledger.keys.push(r.body["id"].as_str().expect("key id").to_owned()),
            }
        }
        ledger.answers.push(Answer {
            kind: kind as usize,
            sent,
            took: sent.elapsed(),
            status: r.status,
            code: r.code().to_owned(),
        });
    }
}

fn upstream_of(database_url: &str) -> SocketAddr {
    let url = url::Url::parse(database_url).expect("MOLTFLOW_TEST_DATABASE_URL");
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).expect("resolve").next().expect("an address")
}

#[tokio::test]
async fn postgres_stopping_mid_load_answers_503_fast_recovers_within_5_s_and_loses_no_acknowledged_write() {
    let Some(database_url) = moltflow_store::testing::postgres::database_url() else {
        return skipped(NEEDS_POSTGRES);
    };
    let mut proxy = Proxy::start(upstream_of(&database_url)).await;
    let via_proxy = proxy.addr.to_string();
    // A shorter wait for a connection than the default 2 s, so that the writers meet the outage
    // several times within a second or so (each 503 takes one wait).
    let overrides = [("database_via", via_proxy.as_str()), ("rate_limit_scale", "0"), ("db_acquire_timeout_ms", "500")];
    let app = Arc::new(TestApp::spawn_with(&overrides).await);
    let (access, tenant) = owner(&app, "load@example.com").await;
    set_plan(&app, &tenant, "business").await; // no quota in the way

    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let workers: Vec<_> = [Write::Event, Write::Consume, Write::Key]
        .into_iter()
        .flat_map(|kind| [(kind, 1), (kind, 2)])
        .map(|worker| tokio::spawn(load(app.clone(), access.clone(), worker, stop.clone(), ledger.clone())))
        .collect();
    // Answers of each kind sent since `since` with `status` (2xx when `None`).
    let answers_since = |since: Instant, status: Option<u16>| {
        let l = ledger.lock().expect("ledger");
        let wanted = |a: &&Answer| a.sent >= since && status.map_or(a.status < 300, |s| a.status == s);
        (0..3).map(|kind| l.answers.iter().filter(|a| a.kind == kind).filter(wanted).count()).collect::<Vec<_>>()
    };
    // The load is under way: every kind of write has been acknowledged.
    let started = Instant::now();
    eventually(Duration::from_secs(20), "an acknowledged write of each kind", async || {
        let acked = answers_since(started, None);
        if acked.iter().all(|n| *n > 0) { Ok(()) } else { Err(acked) }
    })
    .await;

    proxy.cut();
    let cut_at = Instant::now();
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 503, "/readyz while the database is gone: {}", ready.body);
    assert_eq!(app.get("/healthz", None).await.status, 200);
    // Every kind of write meets the outage more than once (both of its writers, or one twice).
    eventually(Duration::from_secs(20), "two 503s of each kind of write sent after the cut", async || {
        let refused = answers_since(cut_at, Some(503));
        if refused.iter().all(|n| *n >= 2) { Ok(()) } else { Err(refused) }
    })
    .await;

    proxy.restore().await;
    let restored_at = Instant::now();
    // Recovered: each kind of write succeeds again, and /readyz says so, within 5 s. Real time:
    // the pool notices the database on its own (this bound is the service's promise).
    eventually(Duration::from_secs(5), "recovery after the database returned", async || {
        let acked = answers_since(restored_at, None);
        let ready = app.get("/readyz", None).await.status;
        if acked.iter().all(|n| *n > 0) && ready == 200 { Ok(()) } else { Err((acked, ready)) }
    })
    .await;
    let recovery = restored_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("load worker");
    }

    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));
    // During the outage: 503 database_unavailable, never another error, never a hang.
    let outage: Vec<&Answer> =
        ledger.answers.iter().filter(|a| a.sent + a.took > cut_at && a.sent < restored_at).collect();
    assert!(outage.iter().any(|a| a.status == 503), "the outage was noticed");
    for a in &ledger.answers {
        assert!(
            a.status < 300 || (a.status, a.code.as_str()) == (503, "database_unavailable"),
            "{} {}",
            a.status,
            a.code
        );
        // At most two waits for a connection (a usage write waits for the batch before it).
        assert!(a.took < Duration::from_millis(2000), "an answer took {:?}", a.took);
    }
    for kind in 0..3 {
        let timeline: Vec<_> = ledger
            .answers
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| {
                let at = |t: Instant| {
                    t.saturating_duration_since(cut_at).as_millis() as i64
                        - cut_at.saturating_duration_since(t).as_millis() as i64
                };
                (at(a.sent), a.took.as_millis(), a.status)
            })
            .collect();
        assert!(
            outage.iter().any(|a| a.kind == kind && a.status == 503),
            "writes of kind {kind} were refused; (sent ms after the cut, took ms, status): {timeline:?}"
        );
    }
    eprintln!(
        "outage: {} answers, {} refused with 503; recovered {recovery:?} after the database returned",
        outage.len(),
        outage.iter().filter(|a| a.status == 503).count()
    );

    // No acknowledged write is lost.
    let stored = |sql: String| {
        let app = app.clone();
        async move { app.count(&sql).await }
    };
    let in_list = |ids: &Vec<String>| ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    let events = &ledger.events;
    let got = stored(format!(
        "SELECT COUNT(*) FROM usage_events WHERE tenant_id = '{tenant}' AND event_id IN ({})",
        in_list(events)
    ))
    .await;
    assert_eq!(got as usize, events.len(), "acknowledged events on disk");
    let consumes = &ledger.consumes;
    let got = stored(format!(
        "SELECT COUNT(*) FROM usage_consumptions WHERE tenant_id = '{tenant}' AND idempotency_key IN ({})",
        in_list(consumes)
    ))
    .await;
    assert_eq!(got as usize, consumes.len(), "acknowledged consumes on disk");
    let keys = &ledger.keys;
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len());
    let got = stored(format!("SELECT COUNT(*) FROM api_keys WHERE id IN ({})", in_list(keys))).await;
    assert_eq!(got as usize, keys.len(), "acknowledged keys on disk");
    // Counters hold at least every acknowledged write (a write whose commit outcome was lost with
    // the connection may count too: it answered 503, and a retry with its id counts once).
    let used = |metric: &str| {
        format!(
            "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM usage_monthly WHERE tenant_id = '{tenant}' AND metric = '{metric}'"
        )
    };
    assert!(stored(used("messages")).await as usize >= events.len());
    assert!(stored(used("ai_replies")).await as usize >= consumes.len());
}

#[tokio::test]
async fn a_database_that_hangs_does_not_hold_a_request_whose_cached_session_is_still_valid() {
    let Some(database_url) = moltflow_store::testing::postgres::database_url() else {
        return skipped(NEEDS_POSTGRES);
    };
    let proxy = crate::tcp_proxy::TcpProxy::start(upstream_of(&database_url)).await;
    let via_proxy = proxy.addr.to_string();
    let app = TestApp::spawn_with(&[
        ("database_via", via_proxy.as_str()),
        ("rate_limit_scale", "0"),
        ("test_refresh_wait_ms", "250"),
    ])
    .await;
    let (access, _) = owner(&app, "hang@example.com").await;
    assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200);

    // The database stops answering (connections stay open); the session state read just now is
    // due for its read-ahead at 0.75 s, and still valid for the request that does it.
    proxy.stall();
    app.advance(Duration::from_millis(800));
    let answered = tokio::time::timeout(Duration::from_secs(5), app.get("/auth/me", Some(&access))).await;
    proxy.restore();
    let me = answered.expect("a request with a valid cached session waited on a database that hangs");
    assert_eq!(me.status, 200, "{}", me.body);
}
