//! The SQLite file cannot be written: the disk is full, or the database has become read-only.
//!
//! How the faults are made: the tests run as root, for whom file permissions do not stop writes,
//! and the machine is shared, so no small filesystem is mounted. SQLite itself produces the
//! errors the service meets in production, on every connection of the pool:
//! - `PRAGMA max_page_count` caps the file at its current size, and a scratch table fills the
//!   free pages: a write that needs one more page fails with `SQLITE_FULL` ("database or disk is
//!   full"), the code and message a full disk gives;
//! - `PRAGMA query_only` refuses every write with `SQLITE_READONLY` ("attempt to write a readonly
//!   database"), the code a file or filesystem made read-only gives.

use std::sync::{Arc, Mutex};

use moltflow_store::Backend;
use serde_json::json;

use crate::common::{PASSWORD, TestApp, owner, set_plan, skipped};

/// Collects what the log subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

/// Logs of this test's thread (the test runtime runs the server's tasks on it too).
fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

async fn sqlite_app() -> Option<TestApp> {
    let app = TestApp::spawn().await;
    if app.store.backend() != Backend::Sqlite {
        skipped("SQLite: MOLTFLOW_TEST_DATABASE_URL unset; disk-full and read-only files are SQLite's");
        return None;
    }
    Some(app)
}

fn register_body(email: &str) -> serde_json::Value {
    json!({"email": email, "password": PASSWORD, "full_name": "Late Comer"})
}

fn thousand_events() -> serde_json::Value {
    let events: Vec<_> =
        (0..1000).map(|i| json!({"id": format!("full-{i}"), "metric": "messages", "quantity": 1})).collect();
    json!({"events": events})
}

#[tokio::test]
async fn a_full_disk_answers_503_logs_why_writes_nothing_half_and_the_retry_succeeds_once_there_is_room() {
    let Some(app) = sqlite_app().await else { return };
    let (access, tenant) = owner(&app, "full@example.com").await;
    set_plan(&app, &tenant, "business").await;

    // The disk fills up.
    app.store.execute_raw("CREATE TABLE scratch_fill (b BLOB)").await.expect("scratch table");
    app.store.on_every_connection("PRAGMA max_page_count = 1").await.expect("cap the file");
    for size in [4096, 512, 64, 8] {
        while app.store.execute_raw(&format!("INSERT INTO scratch_fill VALUES (randomblob({size}))")).await.is_ok() {}
    }
    let (log, _guard) = capture_logs();

    let r = app.post("/usage/events", thousand_events(), Some(&access)).await;
    r.assert(503, "database_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));

    // Nothing half-written: however far the batch got before the file could not grow, not one
    // event of it is stored and no counter moved.
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM usage_events WHERE tenant_id = '{tenant}'")).await, 0);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM usage_monthly WHERE tenant_id = '{tenant}'")).await, 0);
    // Reads go on.
    assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200);
    assert_eq!(app.get("/usage/current", Some(&access)).await.status, 200);
    // The operator reads why.
    let text = log.text();
    let line = text.lines().find(|l| l.contains("database or disk is full")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("ERROR") && line.contains("database unavailable"), "{line}");
    assert!(!text.contains("INSERT") && !text.contains(&access), "no SQL or secret in the log: {text}");

    // Room again: the same requests succeed, and count once.
    app.store.on_every_connection("PRAGMA max_page_count = 1000000").await.expect("a larger disk");
    app.store.execute_raw("DROP TABLE scratch_fill").await.expect("scratch table");
    let r = app.post("/usage/events", thousand_events(), Some(&access)).await;
    assert_eq!((r.status, &r.body), (202, &json!({"accepted": 1000, "duplicates": 0})));
    let r = app.post("/usage/events", thousand_events(), Some(&access)).await;
    assert_eq!(r.body, json!({"accepted": 0, "duplicates": 1000}));
}

#[tokio::test]
async fn a_read_only_database_answers_503_on_writes_and_keeps_serving_reads() {
    let Some(app) = sqlite_app().await else { return };
    let (access, _) = owner(&app, "ro@example.com").await;
    app.store.on_every_connection("PRAGMA query_only = ON").await.expect("read-only");
    let (log, _guard) = capture_logs();

    app.post("/auth/register", register_body("late@example.com"), None).await.assert(503, "database_unavailable");
    let r = app.post("/api-keys", json!({"name": "k", "scopes": ["usage:read"]}), Some(&access)).await;
    r.assert(503, "database_unavailable");
    let r = app
        .post("/usage/consume", json!({"metric": "messages", "quantity": 1, "idempotency_key": "ro-1"}), Some(&access))
        .await;
    r.assert(503, "database_unavailable");
    // Reads go on, and the database answers: ready.
    assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200);
    assert_eq!(app.get("/usage/current", Some(&access)).await.status, 200);
    assert_eq!(app.get("/readyz", None).await.status, 200);
    let text = log.text();
    assert!(text.contains("attempt to write a readonly database") && text.contains("database unavailable"), "{text}");

    app.store.on_every_connection("PRAGMA query_only = OFF").await.expect("writable");
    assert_eq!(app.post("/auth/register", register_body("late@example.com"), None).await.status, 201);
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_consumptions").await, 0);
}
