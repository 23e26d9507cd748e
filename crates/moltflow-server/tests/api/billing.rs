use moltflow_app::billing::signature::sign;
use serde_json::{Value, json};

use crate::common::{TestApp, app_with_owner, token};

pub use crate::billing_stripe::stripe_app;

pub const WEBHOOK_SECRET: &str = "whsec_moltflow_test";

pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub async fn webhook(app: &TestApp, body: &Value, secret: &str, at: i64) -> crate::common::Resp {
    let payload = body.to_string();
    let header = format!("t={at},v1={}", sign(secret, at, payload.as_bytes()));
    app.send(
        app.client
            .post(app.url("/billing/webhook"))
            .header("stripe-signature", header)
            .header("content-type", "application/json")
            .body(payload),
    )
    .await
}

pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created, "data": {"object": object}})
}

pub fn tenant_of(pair: &Value) -> String {
    pair["user"]["tenant_id"].as_str().unwrap().to_owned()
}

pub async fn plan_of(app: &TestApp, tenant: &str) -> String {
    let n = app.count_with("SELECT COUNT(*) FROM tenants WHERE id = $1 AND plan_id = 'pro'", &[tenant]).await;
    let b = app.count_with("SELECT COUNT(*) FROM tenants WHERE id = $1 AND plan_id = 'business'", &[tenant]).await;
    match (n, b) {
        (1, _) => "pro".into(),
        (_, 1) => "business".into(),
        _ => "other".into(),
    }
}

#[tokio::test]
async fn plans_are_public_and_match_the_contract() {
    let app = TestApp::spawn().await;
    let r = app.get("/billing/plans", None).await;
    assert_eq!(r.status, 200);
    let plans = r.body.as_array().unwrap();
    let ids: Vec<&str> = plans.iter().map(|p| p["plan_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["free", "starter", "pro", "business"]);
    let pro = &plans[2];
    assert_eq!(
        pro["limits"],
        json!({"max_sessions": 3, "max_messages_per_month": 5000, "max_groups": 10, "max_labels": 50, "ai_replies_per_month": 500})
    );
    assert_eq!(pro["prices"]["monthly"], json!({"amount_cents": 2990, "currency": "usd"}));
    assert_eq!(plans[3]["prices"]["yearly"]["amount_cents"], 23880);
    assert_eq!(plans[3]["limits"]["max_messages_per_month"], Value::Null);
    assert!(pro["features"].as_array().is_some_and(|f| !f.is_empty()));
}

#[tokio::test]
async fn a_new_tenant_is_on_the_free_plan() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let r = app.get("/billing/subscription", Some(&token(&owner, "access_token"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["plan_id"], "free");
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["cancel_at_period_end"], false);
    assert_eq!(r.body["limits"]["max_messages_per_month"], 50);
    for field in ["sessions", "messages_this_month", "groups", "labels", "ai_replies_this_month"] {
        assert!(r.body["usage"][field].is_u64(), "usage.{field}");
    }
    // The usage block reads the metering numbers.
    let at = token(&owner, "access_token");
    assert_eq!(app.post("/usage/consume", json!({"metric": "messages", "quantity": 3}), Some(&at)).await.status, 200);
    let put = app.send(app.client.put(app.url("/usage/gauges")).bearer_auth(&at).json(&json!({"labels": 4}))).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let usage = app.get("/billing/subscription", Some(&at)).await.body["usage"].clone();
    assert_eq!((usage["messages_this_month"].as_u64(), usage["labels"].as_u64()), (Some(3), Some(4)), "{usage}");
}

#[tokio::test]
async fn local_checkout_upgrades_through_the_pay_page() {
    let (app, owner, at) = app_with_owner().await;
    let r = app.post("/billing/checkout", json!({"plan_id": "pro", "billing_cycle": "monthly"}), Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.body["checkout_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.base), "{url}");
    assert_eq!(r.body["session_id"].as_str().unwrap(), url.rsplit('/').next().unwrap());
    let page = app.client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Pay"));
    let paid = app.client.post(&url).header("accept", "application/json").send().await.unwrap();
    assert_eq!(paid.status(), 200);
    let sub = app.get("/billing/subscription", Some(&at)).await.body;
    assert_eq!(
        (sub["plan_id"].as_str(), sub["status"].as_str(), sub["billing_cycle"].as_str()),
        (Some("pro"), Some("active"), Some("monthly"))
    );
    assert_eq!(sub["limits"]["max_messages_per_month"], 5000);
    assert!(sub["current_period_end"].is_string());
    assert_eq!(plan_of(&app, &tenant_of(&owner)).await, "pro");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'plan.changed'").await, 1);
    // Paying twice changes nothing more.
    assert_eq!(app.client.post(&url).send().await.unwrap().status(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'plan.changed'").await, 1);
    // The plan's rate limit applies at once.
    assert_eq!(app.get("/auth/me", Some(&at)).await.header("ratelimit-limit"), Some("600"));
    // Same plan and cycle again is a conflict; another cycle is a new checkout.
    app.post("/billing/checkout", json!({"plan_id": "pro", "billing_cycle": "monthly"}), Some(&at))
        .await
        .assert(409, "already_on_plan");
    assert_eq!(
        app.post("/billing/checkout", json!({"plan_id": "pro", "billing_cycle": "yearly"}), Some(&at)).await.status,
        200
    );
}

#[tokio::test]
async fn bad_checkouts_change_nothing() {
    let (app, owner, at) = app_with_owner().await;
    app.post("/billing/checkout", json!({"plan_id": "platinum", "billing_cycle": "monthly"}), Some(&at))
        .await
        .assert(404, "plan_not_found");
    app.post("/billing/checkout", json!({"plan_id": "free", "billing_cycle": "monthly"}), Some(&at))
        .await
        .assert(409, "free_plan");
    app.post("/billing/checkout", json!({"plan_id": "pro", "billing_cycle": "weekly"}), Some(&at))
        .await
        .assert(422, "validation_error");
    for url in ["https://evil.example.com/x", "javascript:alert(1)", "not a url", "http://127.0.0.1:1/elsewhere"] {
        let r = app
            .post(
                "/billing/checkout",
                json!({"plan_id": "pro", "billing_cycle": "monthly", "success_url": url}),
                Some(&at),
            )
            .await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], json!(["body", "success_url"]));
    }
    let own = format!("{}/welcome", app.base);
    assert_eq!(
        app.post(
            "/billing/checkout",
            json!({"plan_id": "pro", "billing_cycle": "monthly", "cancel_url": own}),
            Some(&at)
        )
        .await
        .status,
        200
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM checkout_sessions").await, 1);
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    app.post(
        "/billing/checkout",
        json!({"plan_id": "pro", "billing_cycle": "monthly"}),
        Some(&token(&admin, "access_token")),
    )
    .await
    .assert(403, "insufficient_scope");
    let member = app.add_member(&owner, "member@example.com", "member").await;
    assert_eq!(app.get("/billing/subscription", Some(&token(&member, "access_token"))).await.status, 200);
    app.post("/billing/cancel", json!({}), Some(&token(&member, "access_token")))
        .await
        .assert(403, "insufficient_scope");
    assert_eq!(app.count("SELECT COUNT(*) FROM checkout_sessions").await, 1);
}

#[tokio::test]
async fn redirects_may_go_to_allow_listed_origins() {
    let app = TestApp::spawn_with(&[("billing_redirect_origins", "https://app.moltflow.test")]).await;
    let owner = app.register("owner@example.com").await;
    let r = app
        .post(
            "/billing/checkout",
            json!({"plan_id": "starter", "billing_cycle": "yearly", "success_url": "https://app.moltflow.test/done"}),
            Some(&token(&owner, "access_token")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn cancel_keeps_the_plan_until_the_period_ends() {
    let (app, owner, at) = app_with_owner().await;
    app.post("/billing/cancel", json!({}), Some(&at)).await.assert(409, "no_subscription");
    app.post("/billing/portal", json!({}), Some(&at)).await.assert(409, "no_billing_customer");
    let url =
        app.post("/billing/checkout", json!({"plan_id": "business", "billing_cycle": "yearly"}), Some(&at)).await.body
            ["checkout_url"]
            .as_str()
            .unwrap()
            .to_owned();
    app.client.post(&url).send().await.unwrap();
    let r = app.post("/billing/cancel", json!({}), Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.body["cancel_at_period_end"].as_bool(), r.body["plan_id"].as_str()), (Some(true), Some("business")));
    assert_eq!(app.post("/billing/cancel", json!({}), Some(&at)).await.status, 200, "cancel is idempotent");
    assert_eq!(plan_of(&app, &tenant_of(&owner)).await, "business");
    // The portal opens on the tenant's billing account.
    let portal = app.post("/billing/portal", json!({}), Some(&at)).await;
    assert_eq!(portal.status, 200);
    let page = app.client.get(portal.body["portal_url"].as_str().unwrap()).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("Business"));
    // The period ends: the tenant falls back to free.
    app.store.execute_raw("UPDATE subscriptions SET current_period_end = 1").await.unwrap();
    assert_eq!(app.state.billing().end_due_local_subscriptions().await.unwrap(), 1);
    let sub = app.get("/billing/subscription", Some(&at)).await.body;
    assert_eq!(sub["plan_id"], "free");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'plan.changed'").await, 2);
}

/// The local provider's pages are served beside the dashboard and hold a button that grants a
/// plan: the same headers as the dashboard's pages (no framing, no sniffing, no caching).
#[track_caller]
fn assert_page_headers(what: &str, page: &reqwest::Response) {
    let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(page.status(), 200, "{what}");
    assert_eq!(header("content-security-policy").as_deref(), Some(moltflow_server::dashboard::CSP), "{what}");
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{what}");
    assert_eq!(header("referrer-policy").as_deref(), Some("same-origin"), "{what}");
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{what}");
    assert_eq!(header("cache-control").as_deref(), Some("no-store"), "{what}");
    assert!(header("content-type").is_some_and(|t| t.starts_with("text/html")), "{what}");
}

#[tokio::test]
async fn every_page_of_the_local_provider_carries_the_dashboards_security_headers() {
    let (app, _, at) = app_with_owner().await;
    let url = app
        .post("/billing/checkout", json!({"plan_id": "pro", "billing_cycle": "monthly"}), Some(&at))
        .await
        .body["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let pay_page = app.client.get(&url).send().await.unwrap();
    assert_page_headers("the pay page", &pay_page);
    let html = pay_page.text().await.unwrap();
    // The policy refuses inline style: the page takes the dashboard's stylesheet.
    assert!(!html.contains("<style"), "{html}");
    let style = html.split("href=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_owned();
    assert!(style.starts_with("/assets/style."), "{html}");
    assert_eq!(app.client.get(format!("{}{style}", app.base)).send().await.unwrap().status(), 200);

    assert_page_headers("payment received", &app.client.post(&url).send().await.unwrap());
    assert_page_headers("already paid", &app.client.get(&url).send().await.unwrap());
    let portal =
        app.post("/billing/portal", json!({}), Some(&at)).await.body["portal_url"].as_str().unwrap().to_owned();
    assert_page_headers("the portal", &app.client.get(&portal).send().await.unwrap());
    assert_page_headers("canceled", &app.client.post(&portal).send().await.unwrap());
}

#[tokio::test]
async fn the_webhook_is_off_without_a_secret() {
    let app = TestApp::spawn().await;
    let r = webhook(&app, &event("evt_1", "invoice.paid", now_s(), json!({})), WEBHOOK_SECRET, now_s()).await;
    r.assert(404, "not_found");
}

#[tokio::test]
async fn webhooks_are_verified_applied_once_and_never_roll_back() {
    let app = TestApp::spawn_with(&[("stripe_webhook_secret", WEBHOOK_SECRET)]).await;
    let owner = app.register("owner@example.com").await;
    let tenant = tenant_of(&owner);
    let now = now_s();
    let completed = event(
        "evt_checkout",
        "checkout.session.completed",
        now - 100,
        json!({"id": "cs_1", "client_reference_id": tenant, "customer": "cus_A", "subscription": "sub_A", "payment_status": "paid",
               "metadata": {"tenant_id": tenant, "plan_id": "pro", "billing_cycle": "monthly"}}),
    );
    // Bad signatures change nothing.
    let payload = completed.to_string();
    let no_sig = app
        .send(
            app.client
                .post(app.url("/billing/webhook"))
                .header("content-type", "application/json")
                .body(payload.clone()),
        )
        .await;
    no_sig.assert(400, "invalid_signature");
    webhook(&app, &completed, "whsec_wrong", now).await.assert(400, "invalid_signature");
    webhook(&app, &completed, WEBHOOK_SECRET, now - 360).await.assert(400, "invalid_signature");
    let header = format!("t={now},v1={}", sign(WEBHOOK_SECRET, now, payload.as_bytes()));
    let tampered = payload.replace("\"pro\"", "\"business\"");
    app.send(app.client.post(app.url("/billing/webhook")).header("stripe-signature", header).body(tampered))
        .await
        .assert(400, "invalid_signature");
    assert_eq!(app.count("SELECT COUNT(*) FROM billing_events").await, 0);
    assert_eq!(plan_of(&app, &tenant).await, "other");

    let r = webhook(&app, &completed, WEBHOOK_SECRET, now).await;
    assert_eq!((r.status, r.body["duplicate"].as_bool()), (200, Some(false)), "{}", r.body);
    assert_eq!(plan_of(&app, &tenant).await, "pro");
    let replay = webhook(&app, &completed, WEBHOOK_SECRET, now).await;
    assert_eq!((replay.status, replay.body["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'plan.changed'").await, 1);

    // Newer: payment failed → past_due (plan kept). Then an older "active" arrives late: ignored.
    let failed =
        event("evt_fail", "invoice.payment_failed", now - 10, json!({"customer": "cus_A", "subscription": "sub_A"}));
    assert_eq!(webhook(&app, &failed, WEBHOOK_SECRET, now).await.status, 200);
    let late = event(
        "evt_late",
        "customer.subscription.updated",
        now - 50,
        json!({"id": "sub_A", "customer": "cus_A", "status": "active", "metadata": {"plan_id": "pro"}}),
    );
    assert_eq!(webhook(&app, &late, WEBHOOK_SECRET, now).await.status, 200);
    let at = token(&owner, "access_token");
    assert_eq!(app.get("/billing/subscription", Some(&at)).await.body["status"], "past_due");
    // Deleted ends it: back to free; a stale update after that cannot resurrect it.
    let deleted = event(
        "evt_del",
        "customer.subscription.deleted",
        now - 5,
        json!({"id": "sub_A", "customer": "cus_A", "status": "canceled"}),
    );
    assert_eq!(webhook(&app, &deleted, WEBHOOK_SECRET, now).await.status, 200);
    let stale = event(
        "evt_stale",
        "customer.subscription.updated",
        now - 1,
        json!({"id": "sub_A", "customer": "cus_A", "status": "active", "metadata": {"plan_id": "pro"}}),
    );
    assert_eq!(webhook(&app, &stale, WEBHOOK_SECRET, now).await.status, 200);
    assert_eq!(app.get("/billing/subscription", Some(&at)).await.body["plan_id"], "free");
    // Unknown customers and unknown event types are acknowledged and change nothing.
    let stranger = event(
        "evt_x",
        "customer.subscription.updated",
        now,
        json!({"id": "sub_Z", "customer": "cus_Z", "status": "active", "metadata": {"plan_id": "pro"}}),
    );
    assert_eq!(webhook(&app, &stranger, WEBHOOK_SECRET, now).await.status, 200);
    assert_eq!(
        webhook(&app, &event("evt_y", "charge.refunded", now, json!({})), WEBHOOK_SECRET, now).await.status,
        200
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions WHERE subscription_id = 'sub_Z'").await, 0);
    webhook(&app, &json!({"not": "an event"}), WEBHOOK_SECRET, now).await.assert(400, "invalid_event");
}

#[tokio::test]
async fn events_in_reverse_order_end_in_the_newest_state() {
    let app = TestApp::spawn_with(&[("stripe_webhook_secret", WEBHOOK_SECRET)]).await;
    let owner = app.register("owner@example.com").await;
    let tenant = tenant_of(&owner);
    let now = now_s();
    let meta = json!({"tenant_id": tenant, "plan_id": "starter", "billing_cycle": "yearly"});
    let created = event(
        "evt_1",
        "customer.subscription.created",
        now - 30,
        json!({"id": "sub_R", "customer": "cus_R", "status": "incomplete", "metadata": meta}),
    );
    let active = event(
        "evt_2",
        "customer.subscription.updated",
        now - 20,
        json!({"id": "sub_R", "customer": "cus_R", "status": "active", "metadata": meta}),
    );
    let canceling = event(
        "evt_3",
        "customer.subscription.updated",
        now - 10,
        json!({"id": "sub_R", "customer": "cus_R", "status": "active", "cancel_at_period_end": true, "metadata": meta}),
    );
    for e in [&canceling, &active, &created] {
        assert_eq!(webhook(&app, e, WEBHOOK_SECRET, now).await.status, 200);
    }
    let sub = app.get("/billing/subscription", Some(&token(&owner, "access_token"))).await.body;
    assert_eq!(
        (sub["plan_id"].as_str(), sub["status"].as_str(), sub["billing_cycle"].as_str()),
        (Some("starter"), Some("active"), Some("yearly"))
    );
    assert_eq!(sub["cancel_at_period_end"], true);
}
