//! `POST /usage/consume`: atomic check-and-count against the plan, idempotency, concurrency.

use futures::future::join_all;

use moltflow_core::clock::rfc3339;
use moltflow_core::period::Month;
use serde_json::json;

use crate::common::{NEEDS_POSTGRES, TestApp, owner, set_plan, skipped};

#[tokio::test]
async fn consume_counts_until_the_plan_limit_then_answers_429_with_the_numbers() {
    let app = TestApp::spawn().await;
    let (t, _) = owner(&app, "ana@example.com").await; // free: 50 messages a month
    let r =
        app.post("/usage/consume", json!({"metric": "messages", "quantity": 30, "session_id": "wa-1"}), Some(&t)).await;
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"allowed": true, "metric": "messages", "used": 30, "limit": 50, "remaining": 20}))
    );
    let over = app.post("/usage/consume", json!({"metric": "messages", "quantity": 21}), Some(&t)).await;
    over.assert(429, "quota_exceeded");
    let resets_at = rfc3339(Month::of_ms(app.state.clock.now_ms()).end_ms());
    assert_eq!(
        (&over.body["limit"], &over.body["used"], &over.body["resets_at"]),
        (&json!(50), &json!(30), &json!(resets_at))
    );
    let retry: u64 = over.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=31 * 86_400).contains(&retry), "{retry}");
    let last = app.post("/usage/consume", json!({"metric": "messages", "quantity": 20}), Some(&t)).await;
    assert_eq!((last.status, &last.body["remaining"]), (200, &json!(0)));
    app.post("/usage/consume", json!({"metric": "messages", "quantity": 1}), Some(&t))
        .await
        .assert(429, "quota_exceeded");
    let current = app.get("/usage/current", Some(&t)).await.body;
    assert_eq!(
        current["metrics"]["messages"],
        json!({"used": 50, "limit": 50, "remaining": 0, "percent": 100.0, "included": true})
    );
    // A refused consume is not counted anywhere.
    let daily = app.get("/usage/daily", Some(&t)).await.body;
    let today = daily["days"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((today["messages"].as_u64(), &today["by_session"]), (Some(50), &json!({"wa-1": 30})));
}

#[tokio::test]
async fn a_zero_limit_refuses_at_once_and_unlimited_plans_always_allow() {
    let app = TestApp::spawn().await;
    let (t, tenant) = owner(&app, "ana@example.com").await;
    let r = app.post("/usage/consume", json!({"metric": "ai_replies", "quantity": 1}), Some(&t)).await;
    r.assert(429, "quota_exceeded");
    assert_eq!((&r.body["limit"], &r.body["used"]), (&json!(0), &json!(0)));
    assert_eq!(r.body["detail"], "Your plan does not include AI replies", "not \"quota exceeded\" with nothing used");
    set_plan(&app, &tenant, "business").await;
    let r = app.post("/usage/consume", json!({"metric": "ai_replies", "quantity": 1000000}), Some(&t)).await;
    assert_eq!(
        r.body,
        json!({"allowed": true, "metric": "ai_replies", "used": 1000000, "limit": null, "remaining": null})
    );
}

#[tokio::test]
async fn a_plan_change_takes_effect_on_the_next_consume() {
    let app = TestApp::spawn().await;
    let (t, tenant) = owner(&app, "ana@example.com").await;
    assert_eq!(app.post("/usage/consume", json!({"metric": "messages", "quantity": 50}), Some(&t)).await.status, 200);
    app.post("/usage/consume", json!({"metric": "messages", "quantity": 1}), Some(&t))
        .await
        .assert(429, "quota_exceeded");
    set_plan(&app, &tenant, "starter").await;
    let r = app.post("/usage/consume", json!({"metric": "messages", "quantity": 1}), Some(&t)).await;
    assert_eq!((r.status, &r.body["used"], &r.body["limit"]), (200, &json!(51), &json!(1000)));
    assert_eq!(app.get("/usage/current", Some(&t)).await.body["plan_id"], "starter");
    set_plan(&app, &tenant, "free").await;
    app.post("/usage/consume", json!({"metric": "messages", "quantity": 1}), Some(&t))
        .await
        .assert(429, "quota_exceeded");
}

#[tokio::test]
async fn a_replayed_idempotency_key_counts_once_and_answers_the_same() {
    // 100 requests of one principal: the per-principal rate limit (60/min on free) is not under test.
    let app = TestApp::spawn_with(&[("rate_limit_scale", "0")]).await;
    let (t, _) = owner(&app, "ana@example.com").await;
    let body = json!({"metric": "messages", "quantity": 5, "idempotency_key": "send-1"});
    let first = app.post("/usage/consume", body.clone(), Some(&t)).await;
    let second = app.post("/usage/consume", body.clone(), Some(&t)).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.body, second.body);
    assert_eq!(app.get("/usage/current", Some(&t)).await.body["metrics"]["messages"]["used"], 5);
    let other = json!({"metric": "messages", "quantity": 6, "idempotency_key": "send-1"});
    app.post("/usage/consume", other, Some(&t)).await.assert(409, "idempotency_key_reused");
    // A hundred concurrent replays of one new key: counted once.
    let body = json!({"metric": "messages", "quantity": 2, "idempotency_key": "send-2"});
    let answers = join_all((0..100).map(|_| app.post("/usage/consume", body.clone(), Some(&t)))).await;
    assert!(
        answers.iter().all(|r| r.status == 200 && r.body["used"] == 7),
        "{:?}",
        answers.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(app.get("/usage/current", Some(&t)).await.body["metrics"]["messages"]["used"], 7);
}

#[tokio::test]
async fn a_hundred_parallel_consumes_at_the_edge_of_the_limit_never_overshoot() {
    // 100 requests of one principal: the per-principal rate limit (60/min on free) is not under test.
    let app = TestApp::spawn_with(&[("rate_limit_scale", "0")]).await;
    let (t, _) = owner(&app, "ana@example.com").await;
    assert_eq!(app.post("/usage/consume", json!({"metric": "messages", "quantity": 45}), Some(&t)).await.status, 200);
    let one = json!({"metric": "messages", "quantity": 1});
    let answers = join_all((0..100).map(|_| app.post("/usage/consume", one.clone(), Some(&t)))).await;
    let granted = answers.iter().filter(|r| r.status == 200).count();
    let refused = answers.iter().filter(|r| r.status == 429 && r.code() == "quota_exceeded").count();
    assert_eq!((granted, refused), (5, 95));
    let mut used: Vec<u64> =
        answers.iter().filter(|r| r.status == 200).map(|r| r.body["used"].as_u64().unwrap()).collect();
    used.sort();
    assert_eq!(used, [46, 47, 48, 49, 50], "each grant saw a distinct total");
    assert_eq!(app.get("/usage/current", Some(&t)).await.body["metrics"]["messages"]["used"], 50);
    // Uneven quantities: the sum of grants still never passes the limit.
    let (t2, tenant2) = owner(&app, "bo@example.com").await;
    set_plan(&app, &tenant2, "starter").await; // 1000 messages
    let answers = join_all(
        (0..100).map(|i| app.post("/usage/consume", json!({"metric": "messages", "quantity": 7 + i % 13}), Some(&t2))),
    )
    .await;
    let granted: u64 =
        answers.iter().enumerate().filter(|(_, r)| r.status == 200).map(|(i, _)| 7 + i as u64 % 13).sum();
    let used = app.get("/usage/current", Some(&t2)).await.body["metrics"]["messages"]["used"].as_u64().unwrap();
    assert_eq!(granted, used);
    assert!(used <= 1000 && used > 1000 - 20, "{used}");
}

#[tokio::test]
async fn two_nodes_consuming_at_once_never_grant_past_the_limit_nor_count_a_key_twice() {
    let a = TestApp::spawn_with(&[("rate_limit_scale", "0")]).await;
    let Some(b) = a.spawn_peer_with(&[("rate_limit_scale", "0")]).await else {
        return skipped(NEEDS_POSTGRES);
    };
    let (t, _) = owner(&a, "ana@example.com").await; // free: 50 messages a month
    let node = |i: usize| if i.is_multiple_of(2) { &a } else { &b };
    // 120 single messages over both nodes, mixed with events reported meanwhile: 50 in all.
    let one = json!({"metric": "messages", "quantity": 1});
    let consumes = join_all((0..120).map(|i| node(i).post("/usage/consume", one.clone(), Some(&t))));
    let events = join_all((0..4).map(|i| {
        node(i).post(
            "/usage/events",
            json!({"events": [{"id": format!("ev-{i}"), "metric": "messages", "quantity": 1}]}),
            Some(&t),
        )
    }));
    let (answers, reported) = tokio::join!(consumes, events);
    assert!(reported.iter().all(|r| r.status == 202), "{:?}", reported.iter().map(|r| &r.body).collect::<Vec<_>>());
    let granted = answers.iter().filter(|r| r.status == 200).count();
    let refused = answers.iter().filter(|r| r.status == 429 && r.code() == "quota_exceeded").count();
    assert_eq!(granted + refused, 120, "{:?}", answers.iter().map(|r| &r.body).collect::<Vec<_>>());
    let used = a.get("/usage/current", Some(&t)).await.body["metrics"]["messages"]["used"].as_u64().unwrap();
    // Events count whatever the limit; grants only up to it.
    assert_eq!(used, granted as u64 + 4);
    assert!((46..=50).contains(&granted), "granted {granted} with 4 events reported meanwhile");
    let mut totals: Vec<u64> =
        answers.iter().filter(|r| r.status == 200).map(|r| r.body["used"].as_u64().unwrap()).collect();
    totals.sort();
    totals.dedup();
    assert_eq!(totals.len(), granted, "each grant saw a distinct total");

    // One new key sent to both nodes at once, many times: counted once, every answer the same.
    let (t2, tenant2) = owner(&a, "bo@example.com").await;
    set_plan(&a, &tenant2, "starter").await;
    let body = json!({"metric": "messages", "quantity": 3, "idempotency_key": "campaign-7"});
    let answers = join_all((0..40).map(|i| node(i).post("/usage/consume", body.clone(), Some(&t2)))).await;
    assert!(
        answers.iter().all(|r| r.status == 200 && r.body["used"] == 3),
        "{:?}",
        answers.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(b.get("/usage/current", Some(&t2)).await.body["metrics"]["messages"]["used"], 3);
}

#[tokio::test]
async fn bad_consumes_are_refused_and_count_nothing() {
    let app = TestApp::spawn().await;
    let (t, _) = owner(&app, "ana@example.com").await;
    let cases = [
        (json!({"metric": "emails", "quantity": 1}), "metric"),
        (json!({"metric": "sessions", "quantity": 1}), "metric"),
        (json!({"metric": "messages", "quantity": 0}), "quantity"),
        (json!({"metric": "messages", "quantity": -1}), "quantity"),
        (json!({"metric": "messages", "quantity": 2.5}), "quantity"),
        (json!({"metric": "messages", "quantity": 9223372036854775808u64}), "quantity"),
        (json!({"metric": "messages", "quantity": "1"}), "quantity"),
        (json!({"metric": "messages", "quantity": 1, "idempotency_key": ""}), "idempotency_key"),
        (json!({"metric": "messages", "quantity": 1, "session_id": "s".repeat(129)}), "session_id"),
        (json!({"metric": "messages", "quantity": 1, "limit": 1000000}), "limit"),
        (json!({"quantity": 1}), "metric"),
    ];
    for (body, field) in cases {
        let r = app.post("/usage/consume", body.clone(), Some(&t)).await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], json!(["body", field]), "{body}: {}", r.body);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_monthly").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_consumptions").await, 0);
}

#[tokio::test]
async fn idempotency_keys_are_forgotten_after_35_days() {
    let app = TestApp::spawn().await;
    let (t, _) = owner(&app, "ana@example.com").await;
    let body = json!({"metric": "messages", "quantity": 1, "idempotency_key": "k"});
    assert_eq!(app.post("/usage/consume", body.clone(), Some(&t)).await.body["used"], 1);
    assert_eq!(app.state.usage().sweep_idempotency_keys().await.unwrap(), 0);
    // 36 days in ms, written out: PostgreSQL computes `36 * 86400000` in 32 bits and overflows.
    app.store.execute_raw("UPDATE usage_consumptions SET at = at - 3110400000").await.unwrap();
    // The background housekeeping sweeps too and may get there first: what counts is that the key
    // is gone, whichever sweep removed it.
    app.state.usage().sweep_idempotency_keys().await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_consumptions").await, 0);
    assert_eq!(app.post("/usage/consume", body, Some(&t)).await.body["used"], 2);
}

#[tokio::test]
async fn a_consume_counts_in_the_month_of_the_service_clock() {
    let app = TestApp::spawn().await;
    let (t, _) = owner(&app, "ana@example.com").await;
    // A key, not the 30-minute access token: the clock moves a month.
    let key = app.create_key(&t, &["usage:write", "usage:read"]).await["raw_key"].as_str().unwrap().to_owned();
    let t = key;
    let r = app.post("/usage/consume", json!({"metric": "messages", "quantity": 50}), Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Next month on the service's clock: a fresh quota, counted there and reported there.
    let next = Month::of_ms(app.state.clock.now_ms()).next();
    app.advance(std::time::Duration::from_millis((next.start_ms() - app.state.clock.now_ms() + 60_000) as u64));
    let r = app.post("/usage/consume", json!({"metric": "messages", "quantity": 7}), Some(&t)).await;
    assert_eq!((r.status, &r.body["used"], &r.body["remaining"]), (200, &json!(7), &json!(43)), "{}", r.body);
    let current = app.get("/usage/current", Some(&t)).await.body;
    assert_eq!(current["metrics"]["messages"]["used"], 7, "{current}");
    assert_eq!(current["period_start"], rfc3339(next.start_ms()));
}
