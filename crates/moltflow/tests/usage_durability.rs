//! Durability of usage: every event and consume the service acknowledged survives a SIGKILL of
//! the process mid-load (answers are sent only after the batch that holds them committed).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

mod support;

use support::{eventually, free_port, moltflow};

fn start(dir: &PathBuf, port: u16) -> Child {
    moltflow()
        .arg("serve")
        .current_dir(dir)
        .env("MOLTFLOW_BIND", format!("127.0.0.1:{port}"))
        .env("MOLTFLOW_LOG", "error")
        .env("MOLTFLOW_RATE_LIMIT_SCALE", "0")
        .env("MOLTFLOW_ARGON2_MEMORY_KIB", "256")
        .env("MOLTFLOW_ARGON2_ITERATIONS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// One request on a fresh connection: `(status, body)`, or `None` if the server is gone.
fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let json = out.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    Some((status, json))
}

fn wait_ready(port: u16) {
    // A process starting up: nothing to wait on but its socket.
    eventually(Duration::from_secs(30), "the server to answer /healthz", || {
        let answer = request(port, "GET", "/healthz", None, None);
        if answer.as_ref().is_some_and(|(s, _)| *s == 200) { Ok(()) } else { Err(answer) }
    });
}

#[derive(Default)]
struct Acked {
    event_ids: Vec<String>,
    consumed: u64,
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_usage_survives_sigkill_mid_load() {
    let dir = std::env::temp_dir().join(format!("moltflow-durability-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let mut child = start(&dir, port);
    wait_ready(port);
    let body = json!({"email": "load@example.com", "password": "sunny-tulip-harbor-42", "full_name": "Load"});
    let (status, pair) = request(port, "POST", "/api/v2/auth/register", None, Some(&body)).unwrap();
    assert_eq!(status, 201, "{pair}");
    let token = pair["access_token"].as_str().unwrap().to_owned();
    let tenant = pair["user"]["tenant_id"].as_str().unwrap().to_owned();
    let store =
        moltflow_store::Store::connect(&format!("sqlite://{}", dir.join("moltflow.db").display()), 1).await.unwrap();
    store.execute_with("UPDATE tenants SET plan_id = 'business' WHERE id = $1", &[&tenant]).await.unwrap();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (acked, stop, token) = (acked.clone(), stop.clone(), token.clone());
            std::thread::spawn(move || {
                for round in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if w % 2 == 0 {
                        let ids: Vec<String> = (0..50).map(|i| format!("w{w}-r{round}-e{i}")).collect();
                        let events: Vec<Value> = ids
                            .iter()
                            .map(|id| json!({"id": id, "metric": "messages", "quantity": 1, "session_id": "wa-1"}))
                            .collect();
                        match request(
                            port,
                            "POST",
                            "/api/v2/usage/events",
                            Some(&token),
                            Some(&json!({"events": events})),
                        ) {
                            Some((202, b)) => {
                                assert_eq!(b["accepted"], 50);
                                acked.lock().unwrap().event_ids.extend(ids);
                            }
                            Some((s, b)) => panic!("unexpected {s}: {b}"),
                            None => break,
                        }
                    } else {
                        let c =
                            json!({"metric": "messages", "quantity": 1, "idempotency_key": format!("w{w}-r{round}")});
                        match request(port, "POST", "/api/v2/usage/consume", Some(&token), Some(&c)) {
                            Some((200, _)) => acked.lock().unwrap().consumed += 1,
                            Some((s, b)) => panic!("unexpected {s}: {b}"),
                            None => break,
                        }
                    }
                }
            })
        })
        .collect();
    // Let the load build up (real processes on real time: poll what they acknowledged), then kill
    // without warning.
    eventually(Duration::from_secs(30), "500 acknowledged events and 10 consumes", || {
        let a = acked.lock().unwrap();
        let seen = (a.event_ids.len(), a.consumed);
        if seen.0 >= 500 && seen.1 >= 10 { Ok(()) } else { Err(seen) }
    });
    let killed = Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.event_ids.len() >= 500 && acked.consumed >= 10,
        "load too light: {} events, {} consumes",
        acked.event_ids.len(),
        acked.consumed
    );

    // Restarted, the service reports at least everything it acknowledged, and every event id.
    let port = free_port();
    let mut child = start(&dir, port);
    wait_ready(port);
    let (status, current) = request(port, "GET", "/api/v2/usage/current", Some(&token), None).unwrap();
    assert_eq!(status, 200, "{current}");
    let used = current["metrics"]["messages"]["used"].as_u64().unwrap();
    let acknowledged = acked.event_ids.len() as u64 + acked.consumed;
    assert!(used >= acknowledged, "used {used} < acknowledged {acknowledged}");
    eprintln!(
        "acknowledged before SIGKILL: {} events + {} consumes = {acknowledged}; counted after restart: {used}",
        acked.event_ids.len(),
        acked.consumed
    );
    let stored =
        store.scalar_i64_with("SELECT COUNT(*) FROM usage_events WHERE tenant_id = $1", &[&tenant]).await.unwrap();
    assert!(stored as usize >= acked.event_ids.len());
    for id in acked.event_ids.iter().step_by(7).chain(acked.event_ids.last()) {
        let n = store
            .scalar_i64_with("SELECT COUNT(*) FROM usage_events WHERE tenant_id = $1 AND event_id = $2", &[&tenant, id])
            .await
            .unwrap();
        assert_eq!(n, 1, "acknowledged event {id} lost");
    }
    let keys = store.scalar_i64("SELECT COUNT(*) FROM usage_consumptions").await.unwrap();
    assert!(keys as u64 >= acked.consumed, "{keys} idempotency keys < {} acknowledged consumes", acked.consumed);
    // Events and grants agree with the counter: nothing counted that was not stored either.
    let events_sum = store.scalar_i64("SELECT COALESCE(SUM(quantity), 0) FROM usage_events").await.unwrap();
    assert_eq!(used, events_sum as u64 + keys as u64);
    store.close().await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}
