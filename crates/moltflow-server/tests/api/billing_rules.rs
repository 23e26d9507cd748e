//! The billing rules of the launch review (API.md §6, revision 2): an unpaid subscription keeps no
//! paid plan, the billed price decides the plan, and erasing a tenant ends its subscription at
//! the provider first. Each test is an attack that succeeded before these rules.

use reqwest::Method;
use serde_json::{Value, json};

use crate::billing::{WEBHOOK_SECRET, event, now_s, stripe_app, tenant_of, webhook};
use crate::common::{PASSWORD, TestApp, token};
use crate::stripe_mock::{Failure, StripeMock};

/// Sends a signed event now and expects it applied.
async fn deliver(app: &TestApp, ev: &Value) {
    let r = webhook(app, ev, WEBHOOK_SECRET, now_s()).await;
    assert_eq!((r.status, r.body["duplicate"].as_bool()), (200, Some(false)), "{}", r.body);
}

/// A `customer.subscription.updated` of `sub` for `tenant`, `age` seconds old.
fn sub_updated(id: &str, age: i64, tenant: &str, sub: &str, status: &str, extra: Value) -> Value {
    let mut object = json!({"id": sub, "customer": format!("cus_{sub}"), "status": status,
        "metadata": {"tenant_id": tenant, "plan_id": "business", "billing_cycle": "yearly"}});
    if let (Some(o), Some(e)) = (object.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    event(id, "customer.subscription.updated", now_s() - age, object)
}

/// A paid checkout of `plan` and `cycle` (metadata only, like Stripe's event) for `sub`.
fn checkout_completed(id: &str, age: i64, tenant: &str, sub: &str, plan: &str, cycle: &str) -> Value {
    event(
        id,
        "checkout.session.completed",
        now_s() - age,
        json!({"id": format!("cs_{id}"), "client_reference_id": tenant, "customer": format!("cus_{sub}"),
               "subscription": sub, "payment_status": "paid",
               "metadata": {"tenant_id": tenant, "plan_id": plan, "billing_cycle": cycle}}),
    )
}

fn invoice(id: &str, kind: &str, age: i64, sub: &str) -> Value {
    event(id, kind, now_s() - age, json!({"customer": format!("cus_{sub}"), "subscription": sub}))
}

/// What the tenant can do right now: subscription view, usage limit, rate-limit tier, and
/// whether a 51-message batch (over the free plan's 50) is allowed.
struct InForce {
    status: String,
    plan_id: String,
    messages_limit: Value,
    usage_limit: Value,
    rate_limit: String,
    over_free_allowed: bool,
}

async fn in_force(app: &TestApp, at: &str, key: &str) -> InForce {
    let sub = app.get("/billing/subscription", Some(at)).await;
    assert_eq!(sub.status, 200, "{}", sub.body);
    let usage = app.get("/usage/current", Some(at)).await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    let rate = app.with_key(Method::GET, "/auth/me", key, None).await;
    let consume =
        app.with_key(Method::POST, "/usage/consume", key, Some(json!({"metric": "messages", "quantity": 51}))).await;
    assert!(consume.status == 200 || consume.code() == "quota_exceeded", "{}", consume.body);
    InForce {
        status: sub.body["status"].as_str().unwrap_or_default().to_owned(),
        plan_id: sub.body["plan_id"].as_str().unwrap_or_default().to_owned(),
        messages_limit: sub.body["limits"]["max_messages_per_month"].clone(),
        usage_limit: usage.body["metrics"]["messages"]["limit"].clone(),
        rate_limit: rate.header("ratelimit-limit").unwrap_or_default().to_owned(),
        over_free_allowed: consume.status == 200,
    }
}

#[tokio::test]
async fn an_unpaid_subscription_gets_the_free_plan_until_an_invoice_is_paid() {
    let app = TestApp::spawn_with(&[("stripe_webhook_secret", WEBHOOK_SECRET)]).await;
    let owner = app.register("owner@example.com").await;
    let (tenant, at) = (tenant_of(&owner), token(&owner, "access_token"));
    let key = app.create_key(&at, &["usage:read", "usage:write", "account:read"]).await["raw_key"]
        .as_str()
        .unwrap()
        .to_owned();
    deliver(&app, &checkout_completed("evt_1", 100, &tenant, "sub_U", "business", "yearly")).await;
    let paid = in_force(&app, &at, &key).await;
    assert_eq!((paid.status.as_str(), paid.plan_id.as_str()), ("active", "business"));
    assert!(paid.over_free_allowed && paid.rate_limit == "3000");

    // A payment fails: Stripe retries (past_due), and the plan stays meanwhile.
    deliver(&app, &invoice("evt_2", "invoice.payment_failed", 90, "sub_U")).await;
    let retrying = in_force(&app, &at, &key).await;
    assert_eq!((retrying.status.as_str(), retrying.plan_id.as_str()), ("past_due", "business"));
    assert_eq!((retrying.messages_limit.clone(), retrying.rate_limit.as_str()), (Value::Null, "3000"));
    assert!(retrying.over_free_allowed);

    // Stripe gives up: unpaid. The tenant is held to the free plan everywhere.
    deliver(&app, &sub_updated("evt_3", 80, &tenant, "sub_U", "unpaid", json!({}))).await;
    let unpaid = in_force(&app, &at, &key).await;
    assert_eq!((unpaid.status.as_str(), unpaid.plan_id.as_str()), ("unpaid", "free"));
    assert_eq!((unpaid.messages_limit, unpaid.usage_limit), (json!(50), json!(50)));
    assert_eq!(unpaid.rate_limit, "60");
    assert!(!unpaid.over_free_allowed, "an unpaid tenant cannot use the paid quota");
    // Another failed retry does not bring the plan back.
    deliver(&app, &invoice("evt_4", "invoice.payment_failed", 70, "sub_U")).await;
    let still = in_force(&app, &at, &key).await;
    assert_eq!((still.status.as_str(), still.plan_id.as_str()), ("unpaid", "free"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'plan.changed' AND details LIKE '%unpaid%'").await,
        1
    );

    // An invoice is paid: active again, with the subscribed plan.
    deliver(&app, &invoice("evt_5", "invoice.paid", 60, "sub_U")).await;
    let back = in_force(&app, &at, &key).await;
    assert_eq!((back.status.as_str(), back.plan_id.as_str()), ("active", "business"));
    assert_eq!((back.messages_limit, back.rate_limit.as_str()), (Value::Null, "3000"));
    assert!(back.over_free_allowed);
}

#[tokio::test]
async fn a_paused_subscription_is_unpaid() {
    let app = TestApp::spawn_with(&[("stripe_webhook_secret", WEBHOOK_SECRET)]).await;
    let owner = app.register("owner@example.com").await;
    let (tenant, at) = (tenant_of(&owner), token(&owner, "access_token"));
    deliver(&app, &sub_updated("evt_1", 50, &tenant, "sub_P", "trialing", json!({}))).await;
    assert_eq!(app.get("/billing/subscription", Some(&at)).await.body["plan_id"], "business");
    // The trial ended without a payment method.
    deliver(&app, &sub_updated("evt_2", 40, &tenant, "sub_P", "paused", json!({}))).await;
    let sub = app.get("/billing/subscription", Some(&at)).await.body;
    assert_eq!((sub["status"].as_str(), sub["plan_id"].as_str()), (Some("unpaid"), Some("free")), "{sub}");
    assert_eq!(sub["limits"]["max_messages_per_month"], 50);
    assert_eq!(app.get("/usage/current", Some(&at)).await.body["plan_id"], "free");
}

/// A subscription item billed at `price` every `interval`.
fn billed_at(price: &str, interval: &str) -> Value {
    json!({"items": {"data": [{"price": {"id": price, "recurring": {"interval": interval}}}]}})
}

#[tokio::test]
async fn the_billed_price_decides_the_plan_not_the_metadata() {
    let mock = StripeMock::start().await;
    let app = stripe_app(&mock).await;
    let owner = app.register("owner@example.com").await;
    let (tenant, at) = (tenant_of(&owner), token(&owner, "access_token"));
    let view = |r: Value| {
        (
            r["plan_id"].as_str().unwrap_or_default().to_owned(),
            r["billing_cycle"].as_str().unwrap_or_default().to_owned(),
            r["limits"]["max_messages_per_month"].clone(),
        )
    };
    deliver(&app, &checkout_completed("evt_1", 100, &tenant, "sub_M", "business", "yearly")).await;
    let sub = app.get("/billing/subscription", Some(&at)).await.body;
    assert_eq!(view(sub), ("business".into(), "yearly".into(), Value::Null));

    // Downgrade in the Stripe portal: the item's price is Starter monthly; the metadata written
    // at checkout still says Business yearly.
    deliver(&app, &sub_updated("evt_2", 90, &tenant, "sub_M", "active", billed_at("price_starter_m", "month"))).await;
    let sub = app.get("/billing/subscription", Some(&at)).await.body;
    assert_eq!(view(sub), ("starter".into(), "monthly".into(), json!(1000)));
    assert_eq!(app.get("/usage/current", Some(&at)).await.body["metrics"]["messages"]["limit"], 1000);
    assert_eq!(app.get("/auth/me", Some(&at)).await.header("ratelimit-limit"), Some("300"));

    // Upgrade: Pro yearly, metadata unchanged (Business) — the price still decides.
    deliver(&app, &sub_updated("evt_3", 80, &tenant, "sub_M", "active", billed_at("price_pro_y", "year"))).await;
    let sub = app.get("/billing/subscription", Some(&at)).await.body;
    assert_eq!(view(sub), ("pro".into(), "yearly".into(), json!(5000)));

    // A price this service does not know: metadata is the fallback (plan), the price's interval
    // the cycle.
    deliver(&app, &sub_updated("evt_4", 70, &tenant, "sub_M", "active", billed_at("price_legacy", "month"))).await;
    let sub = app.get("/billing/subscription", Some(&at)).await.body;
    assert_eq!(view(sub), ("business".into(), "monthly".into(), Value::Null));
}

async fn delete_me(app: &TestApp, at: &str) -> crate::common::Resp {
    app.put_json(Method::DELETE, "/users/me", json!({"current_password": PASSWORD}), Some(at)).await
}

fn cancellations(mock: &StripeMock, sub: &str) -> usize {
    mock.requests_to(&format!("/v1/subscriptions/{sub}")).iter().filter(|r| r.method == "DELETE").count()
}

#[tokio::test]
async fn erasing_a_tenant_cancels_its_subscription_at_the_provider_first() {
    let mock = StripeMock::start().await;
    let app = stripe_app(&mock).await;
    let owner = app.register("owner@example.com").await;
    let (tenant, at) = (tenant_of(&owner), token(&owner, "access_token"));
    deliver(&app, &checkout_completed("evt_1", 100, &tenant, "sub_D", "pro", "monthly")).await;
    let tenant_params = [tenant.as_str()];
    let tenant_rows = || app.count_with("SELECT COUNT(*) FROM tenants WHERE id = $1", &tenant_params);

    // Stripe refuses: 502, and nothing is erased (the account still signs in).
    mock.fail(Failure::ServerError(10));
    delete_me(&app, &at).await.assert(502, "billing_provider_error");
    mock.fail(Failure::None);
    assert_eq!(tenant_rows().await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions WHERE status = 'active'").await, 1);
    assert_eq!(app.get("/users/me", Some(&at)).await.status, 200, "the session was not revoked");

    // Stripe does not answer in time (the app's Stripe timeout is 400 ms): 503 with Retry-After.
    mock.fail(Failure::Hang);
    let r = delete_me(&app, &at).await;
    mock.fail(Failure::None);
    r.assert(503, "billing_unavailable");
    assert!(r.header("retry-after").is_some());
    assert_eq!(tenant_rows().await, 1);
    assert_eq!(app.login("owner@example.com", PASSWORD).await.status, 200);

    // Stripe answers: the subscription is deleted there (now, not at the period's end), then
    // the tenant is erased here.
    let before = cancellations(&mock, "sub_D");
    assert_eq!(delete_me(&app, &at).await.status, 204);
    assert_eq!(cancellations(&mock, "sub_D"), before + 1);
    assert!(mock.requests_to("/v1/subscriptions/sub_D").iter().all(|r| r.field("cancel_at_period_end").is_none()));
    assert_eq!(tenant_rows().await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions").await, 0);
}

#[tokio::test]
async fn erasure_goes_ahead_when_the_subscription_is_already_gone_or_free() {
    let mock = StripeMock::start().await;
    let app = stripe_app(&mock).await;
    // Deleted at Stripe already (its webhook not yet here): Stripe's 404 counts as ended.
    let gone = app.register("gone@example.com").await;
    deliver(&app, &checkout_completed("evt_1", 100, &tenant_of(&gone), "sub_G", "pro", "monthly")).await;
    mock.fail(Failure::NotFound);
    assert_eq!(delete_me(&app, &token(&gone, "access_token")).await.status, 204);
    assert_eq!(cancellations(&mock, "sub_G"), 1);
    // A free tenant, and a member leaving a paying tenant, call nobody.
    let free = app.register("free@example.com").await;
    let payer = app.register("payer@example.com").await;
    deliver(&app, &checkout_completed("evt_2", 90, &tenant_of(&payer), "sub_K", "pro", "monthly")).await;
    let member = app.add_member(&payer, "member@example.com", "member").await;
    let calls = mock.requests().len();
    assert_eq!(delete_me(&app, &token(&free, "access_token")).await.status, 204);
    assert_eq!(delete_me(&app, &token(&member, "access_token")).await.status, 204);
    assert_eq!(mock.requests().len(), calls);
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions WHERE subscription_id = 'sub_K'").await, 1);
}
