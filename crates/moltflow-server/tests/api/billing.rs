use std::time::Duration;

use moltflow_server::billing::signature::sign;
use serde_json::{Value, json};

use crate::common::{PASSWORD, TestApp, app_with_owner, eventually, skipped, token};
use crate::stripe_mock::{Failure, StripeMock};

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

async fn plan_of(app: &TestApp, tenant: &str) -> String {
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

fn stripe_plans_file(dir: &std::path::Path) -> String {
    let path = dir.join(format!("plans-{}.toml", uuid::Uuid::new_v4()));
    let mut text = String::from(
        "[[plans]]\nplan_id = \"free\"\ndisplay_name = \"Free\"\nlimits = { max_sessions = 1, max_messages_per_month = 50, max_groups = 2, max_labels = 10, ai_replies_per_month = 0 }\nmonthly = { amount_cents = 0 }\nyearly = { amount_cents = 0 }\n",
    );
    // Starter and Business too, so that a change of price can move a tenant down or up.
    text.push_str("[[plans]]\nplan_id = \"starter\"\ndisplay_name = \"Starter\"\nlimits = { max_sessions = 2, max_messages_per_month = 1000, max_groups = 5, max_labels = 20, ai_replies_per_month = 100 }\nmonthly = { amount_cents = 990, stripe_price_id = \"price_starter_m\" }\nyearly = { amount_cents = 9900, stripe_price_id = \"price_starter_y\" }\n");
    text.push_str("[[plans]]\nplan_id = \"business\"\ndisplay_name = \"Business\"\nmonthly = { amount_cents = 4990, stripe_price_id = \"price_business_m\" }\nyearly = { amount_cents = 23880, stripe_price_id = \"price_business_y\" }\n");
    text.push_str("[[plans]]\nplan_id = \"pro\"\ndisplay_name = \"Pro\"\nlimits = { max_sessions = 3, max_messages_per_month = 5000, max_groups = 10, max_labels = 50, ai_replies_per_month = 500 }\nmonthly = { amount_cents = 2990, stripe_price_id = \"price_pro_m\" }\nyearly = { amount_cents = 29900, stripe_price_id = \"price_pro_y\" }\n");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

pub async fn stripe_app(mock: &StripeMock) -> TestApp {
    let plans = stripe_plans_file(&std::env::temp_dir());
    TestApp::spawn_with(&[
        ("billing_provider", "stripe"),
        ("stripe_secret_key", "sk_test_moltflow"),
        ("stripe_api_base", mock.base.as_str()),
        ("stripe_webhook_secret", WEBHOOK_SECRET),
        ("stripe_timeout_ms", "400"),
        ("plans_file", plans.as_str()),
    ])
    .await
}

#[tokio::test]
async fn stripe_checkout_portal_and_cancel_make_the_documented_calls() {
    let mock = StripeMock::start().await;
    let app = stripe_app(&mock).await;
    let owner = app.register("owner@example.com").await;
    let tenant = tenant_of(&owner);
    let at = token(&owner, "access_token");
    let r = app.post("/billing/checkout", json!({"plan_id": "pro", "billing_cycle": "yearly"}), Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["checkout_url"].as_str().unwrap().starts_with("https://checkout.stripe.test/"));
    let customers = mock.requests_to("/v1/customers");
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].field("metadata[tenant_id]"), Some(tenant.as_str()));
    let sessions = mock.requests_to("/v1/checkout/sessions");
    let s = &sessions[0];
    assert_eq!(s.field("mode"), Some("subscription"));
    assert_eq!(s.field("line_items[0][price]"), Some("price_pro_y"));
    assert_eq!(s.field("client_reference_id"), Some(tenant.as_str()));
    assert_eq!(s.field("metadata[plan_id]"), Some("pro"));
    assert_eq!(s.field("subscription_data[metadata][tenant_id]"), Some(tenant.as_str()));
    assert_eq!(s.field("customer"), Some("cus_mock1"));
    for req in mock.requests() {
        assert!(req.idempotency_key.as_deref().is_some_and(|k| !k.is_empty()), "{req:?}");
        assert_eq!(req.stripe_version.as_deref(), Some(moltflow_server::billing::stripe::API_VERSION));
    }
    // A second checkout reuses the customer.
    app.post("/billing/checkout", json!({"plan_id": "pro", "billing_cycle": "monthly"}), Some(&at)).await;
    assert_eq!(mock.requests_to("/v1/customers").len(), 1);

    // Stripe reports the completed checkout.
    let now = now_s();
    let done = event(
        "evt_s1",
        "checkout.session.completed",
        now,
        json!({"id": "cs_test_mock2", "client_reference_id": tenant, "customer": "cus_mock1", "subscription": "sub_S1", "payment_status": "paid", "metadata": {"tenant_id": tenant, "plan_id": "pro", "billing_cycle": "yearly"}}),
    );
    assert_eq!(webhook(&app, &done, WEBHOOK_SECRET, now).await.status, 200);
    assert_eq!(plan_of(&app, &tenant).await, "pro");

    let portal = app.post("/billing/portal", json!({}), Some(&at)).await;
    assert_eq!(portal.status, 200);
    assert!(portal.body["portal_url"].as_str().unwrap().starts_with("https://billing.stripe.test/"));
    assert_eq!(mock.requests_to("/v1/billing_portal/sessions")[0].field("customer"), Some("cus_mock1"));

    let cancel = app.post("/billing/cancel", json!({}), Some(&at)).await;
    assert_eq!((cancel.status, cancel.body["cancel_at_period_end"].as_bool()), (200, Some(true)), "{}", cancel.body);
    assert_eq!(mock.requests_to("/v1/subscriptions/sub_S1")[0].field("cancel_at_period_end"), Some("true"));
    assert_eq!(plan_of(&app, &tenant).await, "pro", "plan kept until the period ends");
}

#[tokio::test]
async fn stripe_failures_answer_clearly_and_change_nothing() {
    let mock = StripeMock::start().await;
    let app = stripe_app(&mock).await;
    let owner = app.register("owner@example.com").await;
    let at = token(&owner, "access_token");
    let body = json!({"plan_id": "pro", "billing_cycle": "monthly"});

    mock.fail(Failure::ServerError(10));
    app.post("/billing/checkout", body.clone(), Some(&at)).await.assert(502, "billing_provider_error");
    mock.fail(Failure::None);
    mock.fail(Failure::Hang);
    let r = app.post("/billing/checkout", body.clone(), Some(&at)).await;
    r.assert(503, "billing_unavailable");
    assert!(r.header("retry-after").is_some());
    mock.fail(Failure::None);
    assert_eq!(app.count("SELECT COUNT(*) FROM checkout_sessions").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM billing_customers").await, 0);

    // Rate limited twice, then fine: retried with the same idempotency key.
    let before = mock.requests().len();
    mock.fail(Failure::RateLimited(2));
    let ok = app.post("/billing/checkout", body.clone(), Some(&at)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let attempts: Vec<_> = mock.requests()[before..].iter().filter(|r| r.path == "/v1/customers").cloned().collect();
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a.idempotency_key == attempts[0].idempotency_key));
    assert_eq!(app.count("SELECT COUNT(*) FROM checkout_sessions").await, 1);
}

#[tokio::test]
async fn signup_checkout_creates_the_account_and_its_checkout() {
    let app = TestApp::spawn().await;
    let free = app.post("/billing/signup-checkout", json!({"email": "free@example.com", "full_name": "Free", "password": PASSWORD, "plan_id": "free", "billing_cycle": "monthly"}), None).await;
    assert_eq!(free.status, 201, "{}", free.body);
    assert!(free.body["access_token"].is_string());
    let paid = app
        .post("/billing/signup-checkout", json!({"email": "pro@example.com", "full_name": "Pro", "password": PASSWORD, "plan_id": "pro", "billing_cycle": "yearly", "tenant_name": "Pro Agency"}), None)
        .await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    for f in ["checkout_url", "session_id", "tenant_id", "user_id"] {
        assert!(paid.body[f].is_string(), "{f}");
    }
    let tenant = paid.body["tenant_id"].as_str().unwrap();
    assert_eq!(app.count_with("SELECT COUNT(*) FROM checkout_sessions WHERE tenant_id = $1", &[tenant]).await, 1);
    let url = paid.body["checkout_url"].as_str().unwrap();
    app.client.post(url).send().await.unwrap();
    let pair = app.login("pro@example.com", PASSWORD).await.body;
    assert_eq!(app.get("/billing/subscription", Some(&token(&pair, "access_token"))).await.body["plan_id"], "pro");

    // Bad input creates no account.
    app.post(
        "/billing/signup-checkout",
        json!({"email": "x@example.com", "full_name": "X", "plan_id": "gold", "billing_cycle": "monthly"}),
        None,
    )
    .await
    .assert(404, "plan_not_found");
    app.post(
        "/billing/signup-checkout",
        json!({"email": "x@example.com", "full_name": "X", "plan_id": "pro", "billing_cycle": "weekly"}),
        None,
    )
    .await
    .assert(422, "validation_error");
    app.post(
        "/billing/signup-checkout",
        json!({"email": "pro@example.com", "full_name": "X", "plan_id": "pro", "billing_cycle": "monthly"}),
        None,
    )
    .await
    .assert(409, "email_taken");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 2);
}

#[tokio::test]
async fn signup_checkout_with_stripe_down_creates_nothing() {
    let mock = StripeMock::start().await;
    let app = stripe_app(&mock).await;
    mock.fail(Failure::ServerError(10));
    let r = app.post("/billing/signup-checkout", json!({"email": "x@example.com", "full_name": "X", "password": PASSWORD, "plan_id": "pro", "billing_cycle": "monthly"}), None).await;
    r.assert(502, "billing_provider_error");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM tenants").await, 0);
}

/// The Stripe provider against localstripe (a real Stripe emulator, started by `.ci/run`):
/// customers and subscriptions live in the emulator, which delivers signed webhooks to the app;
/// Checkout and Portal sessions, which it lacks, come from the project's own front.
#[tokio::test]
async fn stripe_provider_against_localstripe() {
    let Ok(upstream) = std::env::var("MOLTFLOW_TEST_LOCALSTRIPE_URL") else {
        return skipped("localstripe: MOLTFLOW_TEST_LOCALSTRIPE_URL; .ci/run starts it and sets it");
    };
    let mock = StripeMock::in_front_of(&upstream).await;
    let app = stripe_app(&mock).await;
    let http = reqwest::Client::new();
    let ls = |path: &str| format!("{upstream}{path}");
    let hook_id = uuid::Uuid::new_v4().simple().to_string();
    let registered = http
        .post(ls(&format!("/_config/webhooks/{hook_id}")))
        .form(&[("url", app.url("/billing/webhook")), ("secret", WEBHOOK_SECRET.to_owned())])
        .send()
        .await
        .unwrap();
    assert!(registered.status().is_success());
    let owner = app.register("owner@example.com").await;
    let tenant = tenant_of(&owner);
    let at = token(&owner, "access_token");

    // Checkout creates the customer in the emulator.
    let r = app.post("/billing/checkout", json!({"plan_id": "pro", "billing_cycle": "monthly"}), Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let customer = app.send(app.client.get(format!("{}/api/v2/billing/subscription", app.base)).bearer_auth(&at)).await;
    assert_eq!(customer.body["plan_id"], "free");
    let customer_id: String = {
        let rows = mock.requests_to("/v1/checkout/sessions");
        rows[0].field("customer").unwrap().to_owned()
    };
    let fetched =
        http.get(ls(&format!("/v1/customers/{customer_id}"))).bearer_auth("sk_test_moltflow").send().await.unwrap();
    assert_eq!(fetched.status(), 200, "customer exists in localstripe");

    // What Stripe Checkout does on payment: a subscription carrying the session's metadata.
    let auth = |r: reqwest::RequestBuilder| r.bearer_auth("sk_test_moltflow");
    auth(http.post(ls("/v1/products")).form(&[("id", "prod_pro"), ("name", "Pro"), ("type", "service")]))
        .send()
        .await
        .unwrap();
    auth(http.post(ls("/v1/plans")).form(&[
        ("id", "price_pro_m"),
        ("product", "prod_pro"),
        ("amount", "2990"),
        ("currency", "usd"),
        ("interval", "month"),
    ]))
    .send()
    .await
    .unwrap();
    let card: Value = auth(http.post(ls("/v1/tokens")).form(&[
        ("card[number]", "4242424242424242"),
        ("card[exp_month]", "12"),
        ("card[exp_year]", "2034"),
        ("card[cvc]", "123"),
    ]))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let attached = auth(
        http.post(ls(&format!("/v1/customers/{customer_id}/sources")))
            .form(&[("source", card["id"].as_str().unwrap())]),
    )
    .send()
    .await
    .unwrap();
    assert!(attached.status().is_success(), "{}", attached.text().await.unwrap());
    let sub = auth(http.post(ls("/v1/subscriptions")).form(&[
        ("customer", customer_id.as_str()),
        ("items[0][plan]", "price_pro_m"),
        ("metadata[tenant_id]", tenant.as_str()),
        ("metadata[plan_id]", "pro"),
        ("metadata[billing_cycle]", "monthly"),
    ]))
    .send()
    .await
    .unwrap();
    assert!(sub.status().is_success(), "{}", sub.text().await.unwrap());
    let sub: Value = sub.json().await.unwrap();
    let sub_id = sub["id"].as_str().unwrap().to_owned();

    // The emulator's signed customer.subscription.created reaches the webhook. The emulator
    // (another process) posts its webhook on its own time: poll for its effect.
    let subscription = async || {
        let plan = app.get("/billing/subscription", Some(&at)).await.body;
        if plan["plan_id"] == "pro" { Ok(plan) } else { Err(plan) }
    };
    let plan = eventually(Duration::from_secs(10), "the webhook of the new subscription", subscription).await;
    assert_eq!((plan["plan_id"].as_str(), plan["status"].as_str()), (Some("pro"), Some("active")), "{plan}");

    // Cancel goes to the emulator; the plan stays until it says the subscription ended.
    let r = app.post("/billing/cancel", json!({}), Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let remote: Value =
        auth(http.get(ls(&format!("/v1/subscriptions/{sub_id}")))).send().await.unwrap().json().await.unwrap();
    assert_eq!(remote["cancel_at_period_end"], true);
    assert_eq!(auth(http.delete(ls(&format!("/v1/subscriptions/{sub_id}")))).send().await.unwrap().status(), 200);
    // As above: the emulator's webhook arrives when it sends it.
    eventually(Duration::from_secs(10), "the webhook of the ended subscription", async || {
        let plan = app.get("/billing/subscription", Some(&at)).await.body;
        if plan["plan_id"] == "free" { Ok(()) } else { Err(plan) }
    })
    .await;
    let _ = http.delete(ls(&format!("/_config/webhooks/{hook_id}"))).send().await;
}
