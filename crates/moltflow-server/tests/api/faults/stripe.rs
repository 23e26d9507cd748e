//! Stripe misbehaving, against the project's Stripe (`stripe_mock`) over real HTTP: answers that
//! are not Stripe objects, and a timeout after Stripe did the work. (`500`, `429` and a Stripe
//! that never answers are in `billing_stripe::stripe_failures_answer_clearly_and_change_nothing`.)

use std::collections::HashSet;

use serde_json::json;

use crate::billing::stripe_app;
use crate::common::{TestApp, owner};
use crate::stripe_mock::{Failure, Garbage, StripeMock};

async fn local_billing_rows(app: &TestApp) -> (i64, i64, i64) {
    (
        app.count("SELECT COUNT(*) FROM billing_customers").await,
        app.count("SELECT COUNT(*) FROM checkout_sessions").await,
        app.count("SELECT COUNT(*) FROM tenants WHERE plan_id <> 'free'").await,
    )
}

#[tokio::test]
async fn stripe_answering_garbage_is_502_billing_provider_error_and_changes_nothing() {
    let mock = StripeMock::start().await;
    let app = stripe_app(&mock).await;
    let (access, tenant) = owner(&app, "garbage@example.com").await;
    let checkout = json!({"plan_id": "pro", "billing_cycle": "monthly"});
    for garbage in [Garbage::TruncatedJson, Garbage::Html, Garbage::WrongShape, Garbage::ProxyErrorPage] {
        mock.fail(Failure::Garbage(garbage));
        let r = app.post("/billing/checkout", checkout.clone(), Some(&access)).await;
        r.assert(502, "billing_provider_error");
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(!detail.contains("<html") && !detail.contains("sk_test"), "{garbage:?}: {detail}");
        assert_eq!(local_billing_rows(&app).await, (0, 0, 0), "{garbage:?} changed local state");
    }
    // Every attempt to create the customer carried the same key: Stripe makes at most one.
    let keys: HashSet<_> = mock.requests_to("/v1/customers").into_iter().map(|r| r.idempotency_key).collect();
    assert_eq!(keys, HashSet::from([Some(format!("customer-{tenant}"))]));

    mock.fail(Failure::None);
    let ok = app.post("/billing/checkout", checkout.clone(), Some(&access)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(local_billing_rows(&app).await, (1, 1, 0));
    // Garbage for the checkout session itself (the customer is known by now): nothing added.
    mock.fail(Failure::Garbage(Garbage::WrongShape));
    app.post("/billing/checkout", checkout, Some(&access)).await.assert(502, "billing_provider_error");
    assert_eq!(local_billing_rows(&app).await, (1, 1, 0));
}

/// The dangerous timeout: Stripe created the customer but the answer came too late. The service
/// says `503 billing_unavailable` and stores nothing; the retry carries the same Idempotency-Key,
/// so Stripe hands back the customer it made instead of making a second one.
#[tokio::test]
async fn a_stripe_timeout_after_the_work_was_done_is_503_and_the_retry_finds_the_same_customer() {
    let mock = StripeMock::start().await;
    let app = stripe_app(&mock).await;
    let (access, _) = owner(&app, "late@example.com").await;
    let checkout = json!({"plan_id": "pro", "billing_cycle": "yearly"});

    mock.fail(Failure::DoneButSlow);
    let r = app.post("/billing/checkout", checkout.clone(), Some(&access)).await;
    r.assert(503, "billing_unavailable");
    assert!(r.header("retry-after").is_some());
    assert_eq!(local_billing_rows(&app).await, (0, 0, 0));

    mock.fail(Failure::None);
    let ok = app.post("/billing/checkout", checkout, Some(&access)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM billing_customers WHERE customer_id = 'cus_mock1'").await, 1);
    let customers = mock.requests_to("/v1/customers");
    assert!(customers.len() >= 2, "the timed-out call and the retry: {customers:?}");
    assert!(customers.iter().all(|c| c.idempotency_key == customers[0].idempotency_key));
    // One customer at Stripe: every checkout session names the first.
    for session in mock.requests_to("/v1/checkout/sessions") {
        assert_eq!(session.field("customer"), Some("cus_mock1"));
    }
}
