//! The local provider's own steps, where it plays Stripe's part: its checkout page and Pay
//! button (a completed checkout through `apply_event`), and ending subscriptions set to cancel
//! once their period is over.

use moltflow_core::billing::{BillingCycle, Provider as ProviderKind};
use moltflow_core::clock::DAY_MS;
use moltflow_core::plan::Plan;
use moltflow_core::subscription::Event;
use moltflow_store::billing::{CheckoutRow, complete_checkout, find_checkout, subscriptions_ending};
use moltflow_types::SubscriptionView;

use super::Billing;
use crate::billing::events::BillingEvent;
use crate::services::failure::{Failure, Outcome};

/// A local checkout session and the plan it is for, as its page shows them.
pub struct LocalCheckout<'a> {
    pub row: CheckoutRow,
    pub plan: &'a Plan,
}

impl<'a> Billing<'a> {
    async fn find_local_checkout(&self, id: &str) -> Outcome<CheckoutRow> {
        let row = {
            let mut conn = self.store.conn().await?;
            find_checkout(&mut conn, id).await?
        };
        row.filter(|r| r.provider == ProviderKind::Local).ok_or(Failure::NotFound("Checkout session"))
    }

    /// The local checkout session `id` (`NotFound` for a Stripe one: only local ones have a page
    /// here).
    pub async fn local_checkout(&self, id: &str) -> Outcome<LocalCheckout<'a>> {
        let row = self.find_local_checkout(id).await?;
        let plans: &'a moltflow_core::plan::PlanCatalogue = self.plans;
        let plan = plans.get(&row.plan_id).ok_or(Failure::NotFound("Plan"))?;
        Ok(LocalCheckout { row, plan })
    }

    /// The local provider's pay button: completes the checkout through `apply_event`; answers the
    /// checkout and the tenant's subscription as it now is.
    pub async fn complete_local_checkout(&self, id: &str) -> Outcome<(CheckoutRow, SubscriptionView)> {
        let row = self.find_local_checkout(id).await?;
        let now = self.clock.now_ms();
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
        self.apply_event(&event).await?;
        let mut tx = self.store.begin().await?;
        complete_checkout(&mut tx, &row.id, now).await?;
        tx.commit().await?;
        let subscription = self.subscription_of(&row.tenant_id).await?;
        Ok((row, subscription))
    }

    /// Local subscriptions set to cancel whose period has ended become canceled (the local
    /// provider plays Stripe's part of saying so). Answers how many were due.
    pub async fn end_due_local_subscriptions(&self) -> Outcome<usize> {
        let now = self.clock.now_ms();
        let due = {
            let mut conn = self.store.conn().await?;
            subscriptions_ending(&mut conn, now).await?
        };
        for sub in &due {
            let event = BillingEvent {
                id: format!("evt_local_end_{}", sub.subscription_id),
                kind: "customer.subscription.deleted".to_owned(),
                created_ms: now,
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
            self.apply_event(&event).await?;
        }
        Ok(due.len())
    }
}
