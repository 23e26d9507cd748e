//! The local provider's own steps, where it plays Stripe's part: its checkout page and Pay
//! button (a completed checkout through `apply_event`), and ending subscriptions set to cancel
//! once their period is over.

use moltflow_core::billing::{BillingCycle, Provider as ProviderKind};
use moltflow_core::clock::{DAY_MS, now_ms};
use moltflow_core::plan::Plan;
use moltflow_core::subscription::Event;
use moltflow_store::billing::{CheckoutRow, complete_checkout, find_checkout, subscriptions_ending};

use super::events::apply_event;
use crate::billing::events::BillingEvent;
use crate::error::{ApiError, ApiResult};
use crate::state::App;

/// A local checkout session and the plan it is for, as its page shows them.
pub struct LocalCheckout<'a> {
    pub row: CheckoutRow,
    pub plan: &'a Plan,
}

async fn find_local_checkout(app: &App, id: &str) -> ApiResult<CheckoutRow> {
    let row = {
        let mut conn = app.store.conn().await?;
        find_checkout(&mut conn, id).await?
    };
    row.filter(|r| r.provider == ProviderKind::Local).ok_or_else(|| ApiError::missing("Checkout session"))
}

/// The local checkout session `id` (`404` for a Stripe one: only local ones have a page here).
pub async fn local_checkout<'a>(app: &'a App, id: &str) -> ApiResult<LocalCheckout<'a>> {
    let row = find_local_checkout(app, id).await?;
    let plan = app.plans.get(&row.plan_id).ok_or_else(|| ApiError::missing("Plan"))?;
    Ok(LocalCheckout { row, plan })
}

/// The local provider's pay button: completes the checkout through `apply_event`.
pub async fn complete_local_checkout(app: &App, id: &str) -> ApiResult<CheckoutRow> {
    let row = find_local_checkout(app, id).await?;
    let now = now_ms();
    let period = match row.billing_cycle {
        BillingCycle::Yearly => 365 * DAY_MS,
        BillingCycle::Monthly => 30 * DAY_MS,
    };
    let suffix = row.id.trim_start_matches("cs_local_");
    let event = BillingEvent {
        id: format!("evt_local_{suffix}"),
        kind: "checkout.session.completed".to_owned(),
        created_ms: now,
        tenant_hint: Some(row.tenant_id.clone()),
        customer_id: Some(format!("cus_local_{}", row.tenant_id)),
        subscription_id: Some(format!("sub_local_{suffix}")),
        plan_id: Some(row.plan_id.clone()),
        billing_cycle: Some(row.billing_cycle.as_str().to_owned()),
        price_id: None,
        price_cycle: None,
        current_period_end: Some(now + period),
        cancel_at_period_end: Some(false),
        event: Some(Event::CheckoutCompleted { paid: true }),
    };
    apply_event(app, &event).await?;
    let mut tx = app.store.begin().await?;
    complete_checkout(&mut tx, &row.id, now).await?;
    tx.commit().await?;
    Ok(row)
}

/// Local subscriptions set to cancel whose period has ended become canceled (the local provider
/// plays Stripe's part of saying so).
pub async fn end_due_local_subscriptions(app: &App) -> ApiResult<usize> {
    let due = {
        let mut conn = app.store.conn().await?;
        subscriptions_ending(&mut conn, now_ms()).await?
    };
    for sub in &due {
        let event = BillingEvent {
            id: format!("evt_local_end_{}", sub.subscription_id),
            kind: "customer.subscription.deleted".to_owned(),
            created_ms: now_ms(),
            tenant_hint: Some(sub.tenant_id.clone()),
            customer_id: None,
            subscription_id: Some(sub.subscription_id.clone()),
            plan_id: Some(sub.plan_id.clone()),
            billing_cycle: Some(sub.billing_cycle.as_str().to_owned()),
            price_id: None,
            price_cycle: None,
            current_period_end: sub.current_period_end,
            cancel_at_period_end: Some(true),
            event: Some(Event::Deleted),
        };
        apply_event(app, &event).await?;
    }
    Ok(due.len())
}
