//! `/usage/current`, `/usage/history`, `/usage/daily` and `PUT /usage/gauges`.

use moltflow_core::clock::{DAY_MS, rfc3339};
use moltflow_core::period::{Day, Month};
use moltflow_store::usage::{MonthlyKey, add_monthly};
use serde_json::json;

use crate::common::{TestApp, owner, set_plan};

#[tokio::test]
async fn current_reports_counters_and_gauges_against_the_plan() {
    let app = TestApp::spawn().await;
    let (t, tenant) = owner(&app, "ana@example.com").await;
    let fresh = app.get("/usage/current", Some(&t)).await;
    assert_eq!(fresh.status, 200);
    let month = Month::of_ms(app.state.clock.now_ms());
    assert_eq!(fresh.body["period_start"], rfc3339(month.start_ms()));
    assert_eq!(fresh.body["period_end"], rfc3339(month.end_ms()));
    assert_eq!(fresh.body["plan_id"], "free");
    assert_eq!(
        fresh.body["metrics"]["messages"],
        json!({"used": 0, "limit": 50, "remaining": 50, "percent": 0.0, "included": true})
    );
    assert_eq!(
        fresh.body["metrics"]["ai_replies"],
        json!({"used": 0, "limit": 0, "remaining": 0, "percent": null, "included": false})
    );

    let r = app.put("/usage/gauges", json!({"sessions": 2, "labels": 5}), Some(&t)).await;
    assert_eq!((r.status, &r.body), (200, &json!({"sessions": 2, "groups": 0, "labels": 5})));
    let r = app.put("/usage/gauges", json!({"labels": 4}), Some(&t)).await;
    assert_eq!(r.body, json!({"sessions": 2, "groups": 0, "labels": 4}));
    app.post("/usage/events", json!({"events": [{"id": "x", "metric": "messages", "quantity": 60}]}), Some(&t)).await;
    let m = app.get("/usage/current", Some(&t)).await.body["metrics"].clone();
    assert_eq!(m["sessions"], json!({"used": 2, "limit": 1, "remaining": 0, "percent": 200.0, "included": true}));
    assert_eq!(m["labels"], json!({"used": 4, "limit": 10, "remaining": 6, "percent": 40.0, "included": true}));
    // Reported events may pass the limit; consume never does.
    assert_eq!(m["messages"], json!({"used": 60, "limit": 50, "remaining": 0, "percent": 120.0, "included": true}));

    set_plan(&app, &tenant, "business").await;
    let m = app.get("/usage/current", Some(&t)).await.body["metrics"].clone();
    assert_eq!(m["messages"], json!({"used": 60, "limit": null, "remaining": null, "percent": null, "included": true}));

    // Billing's `usage` block reads the same numbers.
    let block = app.get("/billing/subscription", Some(&t)).await.body["usage"].clone();
    assert_eq!(
        block,
        json!({"sessions": 2, "messages_this_month": 60, "groups": 0, "labels": 4, "ai_replies_this_month": 0})
    );
}

#[tokio::test]
async fn bad_gauges_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (t, _) = owner(&app, "ana@example.com").await;
    for (body, loc) in [
        (json!({"sessions": -1}), json!(["body", "sessions"])),
        (json!({"groups": 1.5}), json!(["body", "groups"])),
        (json!({"labels": 9223372036854775808u64}), json!(["body", "labels"])),
        (json!({}), json!(["body"])),
        (json!({"messages": 3}), json!(["body", "messages"])),
    ] {
        let r = app.put("/usage/gauges", body.clone(), Some(&t)).await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], loc, "{body}");
    }
    let r = app.put("/usage/gauges", json!({"sessions": 1, "groups": -1}), Some(&t)).await;
    r.assert(422, "validation_error");
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_gauges").await, 0);
}

#[tokio::test]
async fn history_lists_months_newest_first_zero_filled() {
    let app = TestApp::spawn().await;
    let (t, tenant) = owner(&app, "ana@example.com").await;
    let this = Month::of_ms(app.state.clock.now_ms());
    let two_ago = this.prev().prev();
    let twelve_ago = (0..12).fold(this, |m, _| m.prev());
    let key = |tenant: &str, month: Month, metric| MonthlyKey {
        tenant_id: tenant.to_owned(),
        month: month.to_string(),
        metric,
    };
    let mut conn = app.store.conn().await.unwrap();
    let counters = [
        (key(&tenant, two_ago, "messages"), 40),
        (key(&tenant, two_ago, "ai_replies"), 3),
        (key(&tenant, twelve_ago, "messages"), 9),
        (key("other", this, "messages"), 99),
    ];
    add_monthly(&mut conn, &counters).await.unwrap();
    drop(conn);
    let r = app.get("/usage/history", Some(&t)).await;
    assert_eq!(r.status, 200);
    let months = r.body.as_array().unwrap();
    assert_eq!(months.len(), 12);
    assert_eq!(months[0], json!({"month": this.to_string(), "messages": 0, "ai_replies": 0}));
    assert_eq!(months[2], json!({"month": two_ago.to_string(), "messages": 40, "ai_replies": 3}));
    assert!(months.iter().all(|m| m["messages"] != 9), "a month 12 months back is outside the default window");
    let r = app.get("/usage/history?months=13", Some(&t)).await;
    assert_eq!(r.body.as_array().unwrap()[12]["messages"], 9);
    assert_eq!(app.get("/usage/history?months=1", Some(&t)).await.body.as_array().unwrap().len(), 1);
    assert_eq!(app.get("/usage/history?months=36", Some(&t)).await.body.as_array().unwrap().len(), 36);
    for bad in ["0", "37", "1000", "-1", "abc", "1.5", ""] {
        let r = app.get(&format!("/usage/history?months={bad}"), Some(&t)).await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], json!(["query", "months"]), "{bad}");
    }
}

#[tokio::test]
async fn daily_fills_every_day_up_to_today_with_sessions_of_this_tenant_only() {
    let app = TestApp::spawn().await;
    let (a, _) = owner(&app, "a@example.com").await;
    let (b, _) = owner(&app, "b@example.com").await;
    let now = app.state.clock.now_ms();
    let today = Day::of_ms(now);
    let events = json!({"events": [
        {"id": "1", "metric": "messages", "quantity": 3, "session_id": "wa-sales"},
        {"id": "2", "metric": "messages", "quantity": 2, "session_id": "wa-support"},
        {"id": "3", "metric": "messages", "quantity": 1},
        {"id": "4", "metric": "ai_replies", "quantity": 4, "session_id": "wa-sales"},
    ]});
    assert_eq!(app.post("/usage/events", events, Some(&a)).await.status, 202);
    let other = json!({"events": [{"id": "1", "metric": "messages", "quantity": 7, "session_id": "wa-secret"}]});
    assert_eq!(app.post("/usage/events", other, Some(&b)).await.status, 202);

    let r = app.get("/usage/daily", Some(&a)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["month"], today.month().to_string());
    let days = r.body["days"].as_array().unwrap();
    assert_eq!(days.len(), today.day() as usize);
    assert_eq!(days[0]["date"], today.month().day(1).to_string());
    let last = days.last().unwrap();
    assert_eq!(
        last,
        &json!({"date": today.to_string(), "messages": 6, "ai_replies": 4, "by_session": {"wa-sales": 3, "wa-support": 2}})
    );
    let filtered = app.get("/usage/daily?session_id=wa-sales", Some(&a)).await.body;
    assert_eq!(
        filtered["days"].as_array().unwrap().last().unwrap(),
        &json!({"date": today.to_string(), "messages": 3, "ai_replies": 4, "by_session": {"wa-sales": 3}})
    );
    // Another tenant's session shows nothing.
    let leak = app.get("/usage/daily?session_id=wa-secret", Some(&a)).await.body;
    assert!(leak["days"].as_array().unwrap().iter().all(|d| d["messages"] == 0 && d["by_session"] == json!({})));

    // A past month: every day, zero-filled; an event from 35 days ago lands on its own day.
    let back = now - 34 * DAY_MS;
    let old = json!({"events": [{"id": "old", "metric": "messages", "quantity": 5, "timestamp": rfc3339(back)}]});
    assert_eq!(app.post("/usage/events", old, Some(&a)).await.status, 202);
    let month = Day::of_ms(back).month();
    let r = app.get(&format!("/usage/daily?month={month}"), Some(&a)).await.body;
    let days = r["days"].as_array().unwrap();
    if month != today.month() {
        assert_eq!(days.len(), month.days() as usize);
    }
    let day = days.iter().find(|d| d["date"] == Day::of_ms(back).to_string()).unwrap();
    assert!(day["messages"].as_u64().unwrap() >= 5);
}

#[tokio::test]
async fn daily_refuses_malformed_and_out_of_range_months() {
    let app = TestApp::spawn().await;
    let (t, _) = owner(&app, "ana@example.com").await;
    let next = Month::of_ms(app.state.clock.now_ms()).next();
    for bad in ["2026-13", "2026-1", "26-01", "1999-12", "abcd", "", &next.to_string(), "2026-01-01"] {
        let r = app.get(&format!("/usage/daily?month={bad}"), Some(&t)).await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], json!(["query", "month"]), "{bad}");
    }
    let r = app.get("/usage/daily?month=2000-02", Some(&t)).await;
    assert_eq!((r.status, r.body["days"].as_array().unwrap().len()), (200, 29));
    app.get("/usage/daily?session_id=", Some(&t)).await.assert(422, "validation_error");
}

#[tokio::test]
async fn daily_shows_late_events_and_grants_after_the_month_was_read() {
    let app = TestApp::spawn().await;
    let (t, tenant) = owner(&app, "ana@example.com").await;
    set_plan(&app, &tenant, "business").await;
    let now = app.state.clock.now_ms();
    let prev = Month::of_ms(now).prev();
    // Noon of the last day of last month: at most 31.5 days old, so still accepted.
    let late_at = prev.end_ms() - 12 * 3_600_000;
    let late_day = Day::of_ms(late_at).to_string();
    let day_of = |body: &serde_json::Value, date: &str| {
        body["days"].as_array().unwrap().iter().find(|d| d["date"] == date).cloned().unwrap()
    };
    // Read the closed month (and the current one) first, so that any cached answer exists.
    let before = app.get(&format!("/usage/daily?month={prev}"), Some(&t)).await;
    assert_eq!(day_of(&before.body, &late_day)["messages"], 0);
    app.get("/usage/daily", Some(&t)).await;
    let late = json!({"events": [
        {"id": "late", "metric": "messages", "quantity": 4, "session_id": "wa-1", "timestamp": rfc3339(late_at)},
    ]});
    assert_eq!(app.post("/usage/events", late, Some(&t)).await.body, json!({"accepted": 1, "duplicates": 0}));
    let after = app.get(&format!("/usage/daily?month={prev}"), Some(&t)).await;
    assert_eq!(
        day_of(&after.body, &late_day),
        json!({"date": late_day, "messages": 4, "ai_replies": 0, "by_session": {"wa-1": 4}})
    );
    // The filtered view sees it too, and a duplicate of it changes nothing.
    let filtered = app.get(&format!("/usage/daily?month={prev}&session_id=wa-1"), Some(&t)).await;
    assert_eq!(day_of(&filtered.body, &late_day)["messages"], 4);
    let again = json!({"events": [{"id": "late", "metric": "messages", "quantity": 4, "timestamp": rfc3339(late_at)}]});
    assert_eq!(app.post("/usage/events", again, Some(&t)).await.body, json!({"accepted": 0, "duplicates": 1}));
    assert_eq!(day_of(&app.get(&format!("/usage/daily?month={prev}"), Some(&t)).await.body, &late_day)["messages"], 4);

    // A grant shows up in the current month's report read before it.
    let today = Day::of_ms(app.state.clock.now_ms()).to_string();
    let r = app
        .post("/usage/consume", json!({"metric": "ai_replies", "quantity": 2, "session_id": "wa-2"}), Some(&t))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cur = app.get("/usage/daily", Some(&t)).await;
    assert_eq!(day_of(&cur.body, &today)["ai_replies"], 2);
}
