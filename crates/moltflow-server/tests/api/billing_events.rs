//! What `apply_event` answers for each kind of provider event, and what it leaves behind; and a
//! stored subscription status that no variant names (roles have a CHECK constraint instead).

use moltflow_app::billing::events::{BillingEvent, parse_stripe};
use moltflow_app::services::billing::{EventOutcome, Ignored};
use serde_json::{Value, json};

use crate::billing::{event, now_s, tenant_of};
use crate::common::{TestApp, token};

fn parsed(ev: &Value) -> BillingEvent {
    parse_stripe(ev.to_string().as_bytes()).expect("a Stripe event")
}

async fn apply(app: &TestApp, ev: &Value) -> EventOutcome {
    app.state.billing().apply_event(&parsed(ev)).await.expect("applied without error")
}

fn checkout(id: &str, age: i64, tenant: &str, sub: &str, plan: &str, payment_status: &str) -> Value {
    event(
        id,
        "checkout.session.completed",
        now_s() - age,
        json!({"id": format!("cs_{id}"), "client_reference_id": tenant, "customer": format!("cus_{tenant}"),
               "subscription": sub, "payment_status": payment_status,
               "metadata": {"tenant_id": tenant, "plan_id": plan, "billing_cycle": "yearly"}}),
    )
}

/// The tenant's plan and its subscription as stored: `(plan, status, subscription id)`.
async fn state_of(app: &TestApp, tenant: &str) -> (i64, i64, i64) {
    let q = |cond: &str| format!("SELECT COUNT(*) FROM {cond}");
    (
        app.count(&q(&format!("tenants WHERE id = '{tenant}' AND plan_id = 'business'"))).await,
        app.count(&q(&format!("subscriptions WHERE tenant_id = '{tenant}' AND status = 'active'"))).await,
        app.count(&q(&format!("subscriptions WHERE tenant_id = '{tenant}' AND subscription_id = 'sub_A'"))).await,
    )
}

#[tokio::test]
async fn each_event_is_applied_a_duplicate_or_ignored_with_its_reason() {
    let app = TestApp::spawn().await;
    let tenant = tenant_of(&app.register("owner@example.com").await);

    let first = checkout("evt_1", 100, &tenant, "sub_A", "business", "paid");
    assert_eq!(apply(&app, &first).await, EventOutcome::Applied);
    let applied = state_of(&app, &tenant).await;
    assert_eq!(applied, (1, 1, 1), "on business, an active sub_A");
    assert_eq!(apply(&app, &first).await, EventOutcome::Duplicate);

    let ignored = [
        (event("evt_2", "charge.refunded", now_s(), json!({"customer": format!("cus_{tenant}")})), Ignored::NotActedOn),
        (checkout("evt_3", 50, "no-such-tenant", "sub_X", "business", "paid"), Ignored::UnknownTenant),
        (
            // An invoice of another subscription than the tenant's does not touch it.
            event(
                "evt_4",
                "invoice.paid",
                now_s() - 50,
                json!({"customer": format!("cus_{tenant}"), "subscription": "sub_OTHER"}),
            ),
            Ignored::OtherSubscription,
        ),
        (
            // Older than the checkout already applied.
            event(
                "evt_5",
                "customer.subscription.deleted",
                now_s() - 500,
                json!({"id": "sub_A", "customer": format!("cus_{tenant}"), "status": "canceled"}),
            ),
            Ignored::Stale,
        ),
        // An unpaid checkout of the live subscription: no move from active.
        (checkout("evt_6", 40, &tenant, "sub_A", "business", "unpaid"), Ignored::NoTransition),
    ];
    for (ev, reason) in &ignored {
        assert_eq!(apply(&app, ev).await, EventOutcome::Ignored(*reason), "{ev}");
        assert_eq!(state_of(&app, &tenant).await, applied, "{reason:?} changed nothing");
        // Recorded all the same: the provider's retry of it is a duplicate.
        assert_eq!(apply(&app, ev).await, EventOutcome::Duplicate, "{reason:?} replayed");
    }

    // A plan the catalogue does not know, for a tenant without a subscription.
    let other = tenant_of(&app.register("other@example.com").await);
    let unknown_plan = checkout("evt_7", 10, &other, "sub_B", "platinum", "paid");
    assert_eq!(apply(&app, &unknown_plan).await, EventOutcome::Ignored(Ignored::UnknownPlan));
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM subscriptions WHERE tenant_id = '{other}'")).await, 0);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM tenants WHERE id = '{other}' AND plan_id = 'free'")).await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM billing_events").await, 7, "every event id recorded once");
}

#[tokio::test]
async fn a_stored_status_no_variant_names_is_an_internal_error_not_a_crash() {
    let app = TestApp::spawn().await;
    let pair = app.register("owner@example.com").await;
    let (tenant, at) = (tenant_of(&pair), token(&pair, "access_token"));
    apply(&app, &checkout("evt_1", 10, &tenant, "sub_A", "business", "paid")).await;
    assert_eq!(app.get("/billing/subscription", Some(&at)).await.body["status"], "active");

    app.store.execute_raw("UPDATE subscriptions SET status = 'frozen'").await.expect("update");
    app.get("/billing/subscription", Some(&at)).await.assert(500, "internal_error");
    // The event path reads the same row: it fails too, and records nothing.
    let ev = parsed(&checkout("evt_2", 5, &tenant, "sub_A", "business", "paid"));
    assert!(app.state.billing().apply_event(&ev).await.is_err());
    assert_eq!(app.count("SELECT COUNT(*) FROM billing_events WHERE event_id = 'evt_2'").await, 0);
    // The service goes on answering.
    assert_eq!(app.get("/billing/plans", None).await.status, 200);
}
