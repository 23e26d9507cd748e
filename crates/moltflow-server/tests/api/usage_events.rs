//! `POST /usage/events`: batches counted once per event id, and bad batches refused whole.

use moltflow_core::clock::{DAY_MS, MINUTE_MS, rfc3339};
use moltflow_core::period::Month;
use serde_json::{Value, json};

use crate::common::{TestApp, owner, token};

fn event(id: &str, metric: &str, quantity: Value) -> Value {
    json!({"id": id, "metric": metric, "quantity": quantity})
}

async fn used(app: &TestApp, token: &str, metric: &str) -> u64 {
    let r = app.get("/usage/current", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["metrics"][metric]["used"].as_u64().expect("used")
}

#[tokio::test]
async fn events_count_once_per_id_and_replays_are_duplicates() {
    let app = TestApp::spawn().await;
    let (t, _) = owner(&app, "ana@example.com").await;
    // A minute ago, unless that was last month (the first minute of a month): this month's count.
    let now = app.state.clock.now_ms();
    let earlier = if Month::of_ms(now - MINUTE_MS) == Month::of_ms(now) { now - MINUTE_MS } else { now };
    let batch = json!({"events": [
        {"id": "e1", "metric": "messages", "quantity": 3, "session_id": "wa-1"},
        {"id": "e2", "metric": "messages", "quantity": 2, "session_id": "wa-2", "timestamp": rfc3339(earlier)},
        {"id": "e3", "metric": "ai_replies", "quantity": 1},
    ]});
    let r = app.post("/usage/events", batch.clone(), Some(&t)).await;
    assert_eq!((r.status, &r.body), (202, &json!({"accepted": 3, "duplicates": 0})));
    let again = app.post("/usage/events", batch, Some(&t)).await;
    assert_eq!((again.status, &again.body), (202, &json!({"accepted": 0, "duplicates": 3})));
    let mixed = json!({"events": [event("e1", "messages", json!(3)), event("e4", "messages", json!(10))]});
    let r = app.post("/usage/events", mixed, Some(&t)).await;
    assert_eq!(r.body, json!({"accepted": 1, "duplicates": 1}));
    assert_eq!(used(&app, &t, "messages").await, 15);
    assert_eq!(used(&app, &t, "ai_replies").await, 1);
}

#[tokio::test]
async fn the_same_event_id_in_two_tenants_counts_for_each() {
    let app = TestApp::spawn().await;
    let (a, _) = owner(&app, "a@example.com").await;
    let (b, _) = owner(&app, "b@example.com").await;
    let batch = json!({"events": [event("shared-id", "messages", json!(4))]});
    assert_eq!(app.post("/usage/events", batch.clone(), Some(&a)).await.body["accepted"], 1);
    assert_eq!(app.post("/usage/events", batch, Some(&b)).await.body["accepted"], 1);
    assert_eq!(used(&app, &a, "messages").await, 4);
    assert_eq!(used(&app, &b, "messages").await, 4);
}

#[tokio::test]
async fn bad_events_are_refused_whole_and_nothing_is_counted() {
    let app = TestApp::spawn().await;
    let (t, _) = owner(&app, "ana@example.com").await;
    let ok = event("fine", "messages", json!(1));
    let long = "x".repeat(129);
    let cases: Vec<(Value, &str)> = vec![
        (event("a", "emails", json!(1)), "metric"),
        (event("a", "sessions", json!(1)), "metric"),
        (event("a", "messages", json!(0)), "quantity"),
        (event("a", "messages", json!(-2)), "quantity"),
        (event("a", "messages", json!(1.5)), "quantity"),
        (event("a", "messages", json!(9223372036854775808u64)), "quantity"),
        (event("a", "messages", json!(1_000_001)), "quantity"),
        (event("", "messages", json!(1)), "id"),
        (event(&long, "messages", json!(1)), "id"),
        (event("fine", "messages", json!(1)), "id"),
        (
            json!({"id": "a", "metric": "messages", "quantity": 1, "timestamp": rfc3339(app.state.clock.now_ms() - 36 * DAY_MS)}),
            "timestamp",
        ),
        (
            json!({"id": "a", "metric": "messages", "quantity": 1, "timestamp": rfc3339(app.state.clock.now_ms() + 10 * MINUTE_MS)}),
            "timestamp",
        ),
        (json!({"id": "a", "metric": "messages", "quantity": 1, "timestamp": "yesterday"}), "timestamp"),
        (json!({"id": "a", "metric": "messages", "quantity": 1, "session_id": ""}), "session_id"),
    ];
    for (bad, field) in cases {
        let r = app.post("/usage/events", json!({"events": [ok, bad]}), Some(&t)).await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], json!(["body", "events", 1, field]), "{bad}: {}", r.body);
    }
    let unknown_field = json!({"events": [{"id": "a", "metric": "messages", "quantity": 1, "tenant_id": "other"}]});
    app.post("/usage/events", unknown_field, Some(&t)).await.assert(422, "validation_error");
    app.post("/usage/events", json!({"events": []}), Some(&t)).await.assert(422, "validation_error");
    let too_many: Vec<Value> = (0..1001).map(|i| event(&format!("e{i}"), "messages", json!(1))).collect();
    let r = app.post("/usage/events", json!({"events": too_many}), Some(&t)).await;
    r.assert(422, "validation_error");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "events"]));
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_events").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_monthly").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_daily").await, 0);
}

#[tokio::test]
async fn a_full_batch_of_1000_events_fits_the_1_mib_limit_and_more_does_not() {
    let app = TestApp::spawn().await;
    let (t, _) = owner(&app, "ana@example.com").await;
    // ~400 KiB: over the global 64 KiB limit, within the 1 MiB of this route.
    let events: Vec<Value> = (0..1000)
        .map(|i| json!({"id": format!("{i:0>100}"), "metric": "messages", "quantity": 1, "session_id": format!("{i:0>120}")}))
        .collect();
    let body = serde_json::to_string(&json!({"events": events})).unwrap();
    assert!(body.len() > 200 * 1024);
    let r = app.post_raw_auth("/usage/events", &t, body).await;
    assert_eq!((r.status, &r.body), (202, &json!({"accepted": 1000, "duplicates": 0})));
    let huge = format!(
        r#"{{"events": [{{"id": "a", "metric": "messages", "quantity": 1, "session_id": "{}"}}]}}"#,
        "x".repeat(1024 * 1024)
    );
    app.post_raw_auth("/usage/events", &t, huge).await.assert(400, "body_too_large");
    // Other routes keep the 64 KiB limit.
    let big = format!(r#"{{"metric": "messages", "quantity": 1, "session_id": "{}"}}"#, "x".repeat(70 * 1024));
    app.post_raw_auth("/usage/consume", &t, big).await.assert(400, "body_too_large");
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_events").await, 1000);
}

#[tokio::test]
async fn writes_need_usage_write_and_reads_usage_read() {
    let app = TestApp::spawn().await;
    let (owner_token, _) = owner(&app, "owner@example.com").await;
    let pair = app.register("member@example.com").await;
    app.store.execute_raw("UPDATE users SET role = 'member' WHERE email = 'member@example.com'").await.unwrap();
    let member = token(&pair, "access_token");
    let batch = json!({"events": [event("e1", "messages", json!(1))]});
    let r = app.post("/usage/events", batch.clone(), Some(&member)).await;
    r.assert(403, "insufficient_scope");
    assert_eq!(r.body["required_scope"], "usage:write");
    app.post("/usage/consume", json!({"metric": "messages", "quantity": 1}), Some(&member))
        .await
        .assert(403, "insufficient_scope");
    app.put("/usage/gauges", json!({"sessions": 1}), Some(&member)).await.assert(403, "insufficient_scope");
    for path in ["/usage/current", "/usage/history", "/usage/daily"] {
        assert_eq!(app.get(path, Some(&member)).await.status, 200, "{path}");
        app.get(path, None).await.assert(401, "not_authenticated");
    }
    app.post("/usage/events", batch.clone(), None).await.assert(401, "not_authenticated");
    assert_eq!(app.post("/usage/events", batch, Some(&owner_token)).await.status, 202);
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_events").await, 1);
}
