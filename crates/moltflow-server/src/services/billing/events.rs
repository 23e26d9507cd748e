//! Applying provider events (Stripe webhooks, and the local provider playing Stripe's part):
//! the subscription state machine, the plan the billed price stands for, and the tenant's plan.

use moltflow_core::clock::{DAY_MS, now_ms};
use moltflow_core::plan::DEFAULT_PLAN;
use moltflow_core::subscription::{self, Event, Outcome, PlanInForce, Status};
use moltflow_store::AsDbConn;
use moltflow_store::accounts::find_tenant;
use moltflow_store::billing::{
    CheckoutRow, SubscriptionRow, complete_checkout, find_checkout, find_customer_tenant, find_subscription,
    insert_customer, record_event, set_tenant_plan, subscriptions_ending, upsert_subscription,
};
use serde_json::json;

use super::CYCLES;
use crate::auth::revocation::Invalidation;
use crate::billing::Provider;
use crate::billing::events::BillingEvent;
use crate::error::{ApiError, ApiResult};
use crate::services::audit::{self, Actor, Entry};
use crate::services::origin::Origin;
use crate::state::App;

/// Where an event belongs: the tenant it names (if it exists), else its customer's.
async fn resolve_tenant(c: &mut impl AsDbConn, ev: &BillingEvent) -> ApiResult<Option<String>> {
    if let Some(hint) = &ev.tenant_hint
        && find_tenant(c, hint).await?.is_some()
    {
        return Ok(Some(hint.clone()));
    }
    match &ev.customer_id {
        Some(customer) => Ok(find_customer_tenant(c, customer).await?),
        None => Ok(None),
    }
}

/// The plan and cycle a configured provider price stands for.
fn plan_of_price(app: &App, price_id: &str) -> Option<(String, String)> {
    app.billing.prices.iter().find(|(_, id)| *id == price_id).map(|((plan, cycle), _)| (plan.clone(), cycle.clone()))
}

/// The plan and cycle an event bills. The price it is billed at decides: a customer who switches
/// price in the Stripe portal changes plan, whatever the subscription's metadata still says (it
/// was written at checkout and Stripe does not update it). Metadata counts only for a price the
/// plans file does not know (or an event that carries none, like a completed checkout); the
/// stored subscription fills what the event leaves out.
fn billed_plan(app: &App, ev: &BillingEvent, base: Option<&SubscriptionRow>) -> (Option<String>, String) {
    let from_price = ev.price_id.as_deref().and_then(|p| plan_of_price(app, p));
    let (price_plan, price_cycle) = from_price.unzip();
    let plan_id = price_plan
        .or_else(|| ev.plan_id.clone())
        .or_else(|| base.map(|c| c.plan_id.clone()))
        .filter(|p| app.plans.get(p).is_some());
    let cycle = price_cycle
        .or_else(|| ev.price_cycle.clone())
        .or_else(|| ev.billing_cycle.clone())
        .or_else(|| base.map(|c| c.billing_cycle.clone()))
        .filter(|c| CYCLES.contains(&c.as_str()))
        .unwrap_or_else(|| "monthly".to_owned());
    (plan_id, cycle)
}

/// Applies a provider event once. Returns true when the event id was applied before.
pub async fn apply_event(app: &App, ev: &BillingEvent) -> ApiResult<bool> {
    let now = now_ms();
    let mut tx = app.store.begin().await?;
    let tenant_id = resolve_tenant(&mut tx, ev).await?;
    if !record_event(&mut tx, &ev.id, &ev.kind, tenant_id.as_deref(), now).await? {
        return Ok(true);
    }
    let (Some(tenant_id), Some(event)) = (tenant_id, ev.event.as_ref()) else {
        if ev.event.is_some() {
            tracing::info!(event_id = %ev.id, kind = %ev.kind, "billing event for an unknown tenant or customer ignored");
        }
        tx.commit().await?;
        return Ok(false);
    };
    if let Some(customer) = &ev.customer_id {
        insert_customer(&mut tx, &tenant_id, app.billing.provider.name(), customer, now).await?;
    }
    let current = find_subscription(&mut tx, &tenant_id).await?;
    let same_sub = match (&current, &ev.subscription_id) {
        (Some(c), Some(s)) => &c.subscription_id == s,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let starts_new = matches!(event, Event::CheckoutCompleted { .. })
        || matches!(event, Event::Updated { status } if status.grants_plan() || *status == Status::Incomplete);
    if !same_sub && current.is_some() && !starts_new {
        tx.commit().await?;
        return Ok(false);
    }
    let base = current.as_ref().filter(|_| same_sub);
    let base_status = base.and_then(|c| c.status.parse::<Status>().ok());
    let stale = base.is_some_and(|c| ev.created_ms < c.last_event_at)
        || (!same_sub && current.as_ref().is_some_and(|c| ev.created_ms < c.last_event_at));
    let Outcome::Move(status) = subscription::transition(base_status, event, stale) else {
        tx.commit().await?;
        return Ok(false);
    };
    let (plan_id, cycle) = billed_plan(app, ev, base);
    let Some(plan_id) = plan_id else {
        tracing::warn!(event_id = %ev.id, "billing event names no known plan; ignored");
        tx.commit().await?;
        return Ok(false);
    };
    let row = SubscriptionRow {
        tenant_id: tenant_id.clone(),
        provider: base.map(|c| c.provider.clone()).unwrap_or_else(|| app.billing.provider.name().to_owned()),
        subscription_id: ev
            .subscription_id
            .clone()
            .or_else(|| base.map(|c| c.subscription_id.clone()))
            .unwrap_or_default(),
        plan_id: plan_id.clone(),
        billing_cycle: cycle.clone(),
        status: status.as_str().to_owned(),
        current_period_end: ev.current_period_end.or_else(|| base.and_then(|c| c.current_period_end)),
        cancel_at_period_end: ev.cancel_at_period_end.or_else(|| base.map(|c| c.cancel_at_period_end)).unwrap_or(false),
        last_event_at: ev.created_ms.max(base.map(|c| c.last_event_at).unwrap_or(0)),
        updated_at: now,
    };
    upsert_subscription(&mut tx, &row).await?;
    let tenant = find_tenant(&mut tx, &tenant_id).await?.ok_or_else(ApiError::internal)?;
    let new_plan = match status.plan_in_force() {
        PlanInForce::Subscribed => plan_id.clone(),
        PlanInForce::Free => DEFAULT_PLAN.to_owned(),
        PlanInForce::Unchanged => tenant.plan_id.clone(),
    };
    if new_plan != tenant.plan_id {
        set_tenant_plan(&mut tx, &tenant_id, &new_plan, now).await?;
        audit::record(
            &mut tx,
            Entry {
                tenant_id: &tenant_id,
                actor: Actor { kind: "system", id: None },
                action: "plan.changed",
                target: Some(tenant_id.clone()),
                meta: &Origin::default(),
                details: json!({"from": tenant.plan_id, "to": new_plan, "status": status.as_str(), "billing_cycle": cycle, "event_id": ev.id, "event_type": ev.kind}),
            },
        )
        .await?;
    }
    let change = Invalidation::default().tenant(&tenant_id);
    change.announce(&mut tx, &app.store, &app.auth_cache).await?;
    tx.commit().await?;
    change.apply(&app.auth_cache).await;
    // A checkout for another plan replaced a live subscription: end the old one so that the
    // tenant is never charged twice.
    if let Some(old) = current.filter(|c| !same_sub && c.status != Status::Canceled.as_str())
        && let (Provider::Stripe(stripe), "stripe") = (&app.billing.provider, old.provider.as_str())
        && let Err(e) = stripe.cancel_now(&old.subscription_id).await
    {
        tracing::error!(error = %e, subscription = %old.subscription_id, "could not cancel a replaced subscription");
    }
    Ok(false)
}

/// The local provider's pay button: completes the checkout through `apply_event`.
pub async fn complete_local_checkout(app: &App, id: &str) -> ApiResult<CheckoutRow> {
    let row = {
        let mut conn = app.store.conn().await?;
        find_checkout(&mut conn, id).await?
    };
    let row = row.filter(|r| r.provider == "local").ok_or_else(|| ApiError::missing("Checkout session"))?;
    let now = now_ms();
    let period = if row.billing_cycle == "yearly" { 365 * DAY_MS } else { 30 * DAY_MS };
    let suffix = row.id.trim_start_matches("cs_local_");
    let event = BillingEvent {
        id: format!("evt_local_{suffix}"),
        kind: "checkout.session.completed".to_owned(),
        created_ms: now,
        tenant_hint: Some(row.tenant_id.clone()),
        customer_id: Some(format!("cus_local_{}", row.tenant_id)),
        subscription_id: Some(format!("sub_local_{suffix}")),
        plan_id: Some(row.plan_id.clone()),
        billing_cycle: Some(row.billing_cycle.clone()),
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
            billing_cycle: Some(sub.billing_cycle.clone()),
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
