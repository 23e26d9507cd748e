//! Provider events in one shape, whether they came from a Stripe webhook or from the local
//! provider's pay button.

use moltflow_core::billing::BillingCycle;
use moltflow_core::subscription::{Event, Status};
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct BillingEvent {
    pub id: String,
    pub kind: String,
    /// Provider time of the event, in ms.
    pub created_ms: i64,
    /// Tenant named by the object (client_reference_id or metadata).
    pub tenant_hint: Option<String>,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    /// Plan and cycle from the object's metadata (written at checkout; a fallback only). The
    /// cycle is the provider's text as sent: `billed_plan` reads it, and one naming no cycle
    /// counts as monthly there.
    pub plan_id: Option<String>,
    pub billing_cycle: Option<String>,
    /// The price the subscription is billed at, and the cycle its recurring interval says.
    pub price_id: Option<String>,
    pub price_cycle: Option<BillingCycle>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: Option<bool>,
    /// None for event types this service does not act on.
    pub event: Option<Event>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// An id that Stripe sends either as a string or as an expanded object.
fn id_or_object(v: &Value) -> Option<String> {
    text(v).or_else(|| text(&v["id"]))
}

fn seconds_to_ms(v: &Value) -> Option<i64> {
    v.as_i64().map(|s| s * 1000)
}

/// A subscription's period end: top level in older API versions, per item in newer ones.
pub fn period_end_of_subscription(obj: &Value) -> Option<i64> {
    seconds_to_ms(&obj["current_period_end"]).or_else(|| seconds_to_ms(&obj["items"]["data"][0]["current_period_end"]))
}

fn cycle_of_interval(interval: &Value) -> Option<BillingCycle> {
    match interval.as_str()? {
        "month" => Some(BillingCycle::Monthly),
        "year" => Some(BillingCycle::Yearly),
        _ => None,
    }
}

/// Parses a Stripe event body. Errors name what is missing.
pub fn parse_stripe(body: &[u8]) -> Result<BillingEvent, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let id = text(&v["id"]).ok_or("event without id")?;
    let kind = text(&v["type"]).ok_or("event without type")?;
    let created_ms = seconds_to_ms(&v["created"]).ok_or("event without created")?;
    let obj = &v["data"]["object"];
    let meta = &obj["metadata"];
    let mut ev = BillingEvent {
        id,
        created_ms,
        tenant_hint: text(&meta["tenant_id"]),
        customer_id: id_or_object(&obj["customer"]),
        subscription_id: None,
        plan_id: text(&meta["plan_id"]),
        billing_cycle: text(&meta["billing_cycle"]),
        price_id: None,
        price_cycle: None,
        current_period_end: None,
        cancel_at_period_end: None,
        event: None,
        kind: kind.clone(),
    };
    match kind.as_str() {
        "checkout.session.completed" => {
            ev.tenant_hint = text(&obj["client_reference_id"]).or(ev.tenant_hint);
            ev.subscription_id = id_or_object(&obj["subscription"]);
            let paid = matches!(obj["payment_status"].as_str(), Some("paid" | "no_payment_required"));
            ev.event = Some(Event::CheckoutCompleted { paid });
        }
        "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
            ev.subscription_id = text(&obj["id"]);
            let item = &obj["items"]["data"][0];
            ev.price_id =
                text(&item["price"]["id"]).or_else(|| text(&item["plan"]["id"])).or_else(|| text(&obj["plan"]["id"]));
            ev.price_cycle = cycle_of_interval(&item["price"]["recurring"]["interval"])
                .or_else(|| cycle_of_interval(&item["plan"]["interval"]))
                .or_else(|| cycle_of_interval(&obj["plan"]["interval"]));
            ev.current_period_end = period_end_of_subscription(obj);
            ev.cancel_at_period_end = obj["cancel_at_period_end"].as_bool();
            ev.event = Some(if kind.ends_with("deleted") {
                Event::Deleted
            } else {
                let status = obj["status"]
                    .as_str()
                    .and_then(Status::from_stripe)
                    .ok_or("subscription without a known status")?;
                Event::Updated { status }
            });
        }
        "invoice.paid" | "invoice.payment_failed" => {
            ev.subscription_id = id_or_object(&obj["subscription"])
                .or_else(|| text(&obj["parent"]["subscription_details"]["subscription"]));
            ev.current_period_end = seconds_to_ms(&obj["lines"]["data"][0]["period"]["end"]);
            ev.event = Some(if kind == "invoice.paid" { Event::InvoicePaid } else { Event::InvoicePaymentFailed });
        }
        _ => {}
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_checkout_subscription_and_invoice_events() {
        let checkout = json!({"id": "evt_1", "type": "checkout.session.completed", "created": 100, "data": {"object": {
            "client_reference_id": "t1", "customer": "cus_1", "subscription": "sub_1", "payment_status": "paid",
            "metadata": {"tenant_id": "t1", "plan_id": "pro", "billing_cycle": "monthly"}}}});
        let ev = parse_stripe(checkout.to_string().as_bytes()).unwrap();
        assert_eq!(
            (ev.tenant_hint.as_deref(), ev.subscription_id.as_deref(), ev.plan_id.as_deref()),
            (Some("t1"), Some("sub_1"), Some("pro"))
        );
        assert_eq!(ev.event, Some(Event::CheckoutCompleted { paid: true }));
        assert_eq!(ev.created_ms, 100_000);

        let sub = json!({"id": "evt_2", "type": "customer.subscription.updated", "created": 200, "data": {"object": {
            "id": "sub_1", "customer": "cus_1", "status": "unpaid", "cancel_at_period_end": true,
            "items": {"data": [{"price": {"id": "price_9", "recurring": {"interval": "year"}}, "current_period_end": 5000}]}}}});
        let ev = parse_stripe(sub.to_string().as_bytes()).unwrap();
        assert_eq!(ev.event, Some(Event::Updated { status: Status::Unpaid }));
        assert_eq!((ev.price_cycle, ev.price_id.as_deref()), (Some(BillingCycle::Yearly), Some("price_9")));
        assert_eq!(ev.billing_cycle, None, "metadata only");
        assert_eq!((ev.current_period_end, ev.cancel_at_period_end), (Some(5_000_000), Some(true)));

        let inv = json!({"id": "evt_3", "type": "invoice.payment_failed", "created": 300, "data": {"object": {"customer": "cus_1", "subscription": "sub_1"}}});
        assert_eq!(parse_stripe(inv.to_string().as_bytes()).unwrap().event, Some(Event::InvoicePaymentFailed));

        let other = json!({"id": "evt_4", "type": "charge.refunded", "created": 1, "data": {"object": {}}});
        assert_eq!(parse_stripe(other.to_string().as_bytes()).unwrap().event, None);
        assert!(parse_stripe(b"{}").is_err());
    }
}
