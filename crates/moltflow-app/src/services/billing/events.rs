//! Applying provider events (Stripe webhooks, and the local provider playing Stripe's part):
//! the subscription state machine, the plan the billed price stands for, and the tenant's plan.

use moltflow_core::billing::{BillingCycle, Provider as ProviderKind};
use moltflow_core::plan::DEFAULT_PLAN;
use moltflow_core::subscription::{self, Event, Outcome, PlanInForce, Status};
use moltflow_store::accounts::find_tenant;
use moltflow_store::billing::{
    SubscriptionRow, find_customer_tenant, find_subscription, insert_customer, record_event, set_tenant_plan,
    upsert_subscription,
};
use moltflow_store::{AsDbConn, Tx};
use serde_json::json;

use super::Billing;
use crate::auth::revocation::Invalidation;
use crate::billing::ProviderClient;
use crate::billing::events::BillingEvent;
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Failure, Outcome as UseCaseOutcome};
use crate::services::origin::Origin;

/// What applying an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// The tenant's subscription (and maybe its plan) now reflects the event.
    Applied,
    /// This event id was applied before: nothing changed (providers deliver more than once).
    Duplicate,
    /// Recorded as received (a replay is a `Duplicate`), but it changes no subscription.
    Ignored(Ignored),
}

/// Why an event changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// A kind of event this service does not act on (`charge.refunded`…).
    NotActedOn,
    /// It names no tenant or customer this service knows.
    UnknownTenant,
    /// It is about another subscription than the tenant's, and would not replace it.
    OtherSubscription,
    /// Older than the state it would overwrite (out-of-order delivery).
    Stale,
    /// The state machine has no move for it in the current state.
    NoTransition,
    /// The plan it bills is not in the catalogue.
    UnknownPlan,
}

/// Where an event belongs: the tenant it names (if it exists), else its customer's.
async fn resolve_tenant(c: &mut impl AsDbConn, ev: &BillingEvent) -> moltflow_store::Result<Option<String>> {
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
fn plan_of_price(billing: &Billing<'_>, price_id: &str) -> Option<(String, BillingCycle)> {
    billing.prices.iter().find(|(_, id)| *id == price_id).map(|((plan, cycle), _)| (plan.clone(), *cycle))
}

/// The plan and cycle an event bills. The price it is billed at decides: a customer who switches
/// price in the Stripe portal changes plan, whatever the subscription's metadata still says (it
/// was written at checkout and Stripe does not update it). Metadata counts only for a price the
/// plans file does not know (or an event that carries none, like a completed checkout); the
/// stored subscription fills what the event leaves out. Metadata naming no cycle means monthly.
fn billed_plan(
    billing: &Billing<'_>,
    ev: &BillingEvent,
    base: Option<&SubscriptionRow>,
) -> (Option<String>, BillingCycle) {
    let from_price = ev.price_id.as_deref().and_then(|p| plan_of_price(billing, p));
    let (price_plan, price_cycle) = from_price.unzip();
    let plan_id = price_plan
        .or_else(|| ev.plan_id.clone())
        .or_else(|| base.map(|c| c.plan_id.clone()))
        .filter(|p| billing.plans.get(p).is_some());
    let cycle = match price_cycle.or(ev.price_cycle) {
        Some(cycle) => cycle,
        None => match &ev.billing_cycle {
            Some(text) => text.parse().unwrap_or_default(),
            None => base.map(|c| c.billing_cycle).unwrap_or_default(),
        },
    };
    (plan_id, cycle)
}

/// A subscription change an event makes: the row to store, and the one it replaces.
struct Change {
    tenant_id: String,
    row: SubscriptionRow,
    /// The tenant's subscription before the event, when the event is about another one (a
    /// checkout that replaces it): it is ended at the provider once the change is committed.
    replaced: Option<SubscriptionRow>,
}

impl Billing<'_> {
    /// Applies a provider event once: the event id is recorded in the same transaction as the
    /// change it makes, so a replay finds it and changes nothing.
    pub async fn apply_event(&self, ev: &BillingEvent) -> UseCaseOutcome<EventOutcome> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let tenant_id = resolve_tenant(&mut tx, ev).await?;
        if !record_event(&mut tx, &ev.id, &ev.kind, tenant_id.as_deref(), now).await? {
            return Ok(EventOutcome::Duplicate);
        }
        let decided = self.decide(&mut tx, ev, tenant_id, now).await?;
        if let Ok(change) = &decided {
            write(&mut tx, ev, change, now).await?;
            // Cached principals of the tenant carry its plan: stale on every node at the commit.
            Invalidation::default().tenant(&change.tenant_id).announce(&mut tx, self.store, self.auth_cache).await?;
        }
        // One commit for every outcome: the event id (and the customer it names) is kept even when
        // the event changes nothing, so that a replay of it is a duplicate.
        tx.commit().await?;
        match decided {
            Ok(change) => {
                self.after_commit(change).await;
                Ok(EventOutcome::Applied)
            }
            Err(reason) => Ok(EventOutcome::Ignored(reason)),
        }
    }

    /// What the event does to the tenant's subscription, or why it does nothing. Records the
    /// customer the event names first: a later checkout reuses it whatever the event changes.
    async fn decide(
        &self,
        tx: &mut Tx,
        ev: &BillingEvent,
        tenant_id: Option<String>,
        now: i64,
    ) -> UseCaseOutcome<Result<Change, Ignored>> {
        let Some(event) = &ev.event else { return Ok(Err(Ignored::NotActedOn)) };
        let Some(tenant_id) = tenant_id else {
            tracing::info!(event_id = %ev.id, kind = %ev.kind, "billing event for an unknown tenant or customer ignored");
            return Ok(Err(Ignored::UnknownTenant));
        };
        if let Some(customer) = &ev.customer_id {
            insert_customer(tx, &tenant_id, self.provider.kind(), customer, now).await?;
        }
        let current = find_subscription(tx, &tenant_id).await?;
        let same_sub = match (&current, &ev.subscription_id) {
            (Some(c), Some(s)) => &c.subscription_id == s,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let starts_new = matches!(event, Event::CheckoutCompleted { .. })
            || matches!(event, Event::Updated { status } if status.grants_plan() || *status == Status::Incomplete);
        if !same_sub && current.is_some() && !starts_new {
            return Ok(Err(Ignored::OtherSubscription));
        }
        let base = current.as_ref().filter(|_| same_sub);
        // An event older than the stored state never overwrites it, whichever subscription it is about.
        let stale = current.as_ref().is_some_and(|c| ev.created_ms < c.last_event_at);
        let status = match subscription::transition(base.map(|c| c.status), event, stale) {
            Outcome::Move(status) => status,
            Outcome::Ignore if stale => return Ok(Err(Ignored::Stale)),
            Outcome::Ignore => return Ok(Err(Ignored::NoTransition)),
        };
        let (plan_id, cycle) = billed_plan(self, ev, base);
        let Some(plan_id) = plan_id else {
            tracing::warn!(event_id = %ev.id, "billing event names no known plan; ignored");
            return Ok(Err(Ignored::UnknownPlan));
        };
        let row = SubscriptionRow {
            tenant_id: tenant_id.clone(),
            provider: base.map(|c| c.provider).unwrap_or_else(|| self.provider.kind()),
            subscription_id: ev
                .subscription_id
                .clone()
                .or_else(|| base.map(|c| c.subscription_id.clone()))
                .unwrap_or_default(),
            plan_id,
            billing_cycle: cycle,
            status,
            current_period_end: ev.current_period_end.or_else(|| base.and_then(|c| c.current_period_end)),
            cancel_at_period_end: ev
                .cancel_at_period_end
                .or_else(|| base.map(|c| c.cancel_at_period_end))
                .unwrap_or(false),
            last_event_at: ev.created_ms.max(base.map(|c| c.last_event_at).unwrap_or(0)),
            updated_at: now,
        };
        let replaced = current.filter(|_| !same_sub);
        Ok(Ok(Change { tenant_id, row, replaced }))
    }

    /// After the change is committed: cached principals see the new plan, and a checkout for another
    /// plan that replaced a live subscription ends the old one so the tenant is never charged twice.
    async fn after_commit(&self, change: Change) {
        Invalidation::default().tenant(&change.tenant_id).apply(self.auth_cache).await;
        if let Some(old) = change.replaced.filter(|c| c.status != Status::Canceled)
            && let (ProviderClient::Stripe(stripe), ProviderKind::Stripe) = (self.provider, old.provider)
            && let Err(e) = stripe.cancel_now(&old.subscription_id).await
        {
            tracing::error!(error = %e, subscription = %old.subscription_id, "could not cancel a replaced subscription");
        }
    }
}

/// Stores the subscription and moves the tenant to the plan its status grants (audited).
async fn write(tx: &mut Tx, ev: &BillingEvent, change: &Change, now: i64) -> UseCaseOutcome<()> {
    let Change { tenant_id, row, .. } = change;
    upsert_subscription(tx, row).await?;
    let tenant = find_tenant(tx, tenant_id)
        .await?
        .ok_or_else(|| Failure::unexpected(anyhow::anyhow!("the tenant of an applied event vanished")))?;
    let new_plan = match row.status.plan_in_force() {
        PlanInForce::Subscribed => row.plan_id.clone(),
        PlanInForce::Free => DEFAULT_PLAN.to_owned(),
        PlanInForce::Unchanged => tenant.plan_id.clone(),
    };
    if new_plan == tenant.plan_id {
        return Ok(());
    }
    set_tenant_plan(tx, tenant_id, &new_plan, now).await?;
    let details = json!({
        "from": tenant.plan_id, "to": new_plan, "status": row.status.as_str(),
        "billing_cycle": row.billing_cycle.as_str(), "event_id": ev.id, "event_type": ev.kind,
    });
    let entry = Entry {
        tenant_id,
        actor: Actor { kind: "system", id: None },
        action: "plan.changed",
        target: Some(tenant_id.clone()),
        meta: &Origin::default(),
        details,
    };
    audit::record_at(tx, entry, now).await?;
    Ok(())
}
