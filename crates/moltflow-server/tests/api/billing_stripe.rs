//! Billing through the Stripe provider: against a Stripe mock of the test's (checkout, portal,
//! cancel, failures, sign-up checkout), and against localstripe when `.ci/run` starts it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::billing::{WEBHOOK_SECRET, event, now_s, plan_of, tenant_of, webhook};
use crate::common::{PASSWORD, TestApp, eventually, skipped, token};
use crate::stripe_mock::{Failure, StripeMock};

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
        assert_eq!(req.stripe_version.as_deref(), Some(moltflow_app::billing::stripe::API_VERSION));
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
