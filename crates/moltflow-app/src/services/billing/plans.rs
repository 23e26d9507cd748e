//! The plans on offer and the tenant's subscription as the API shows them.

use moltflow_core::billing::BillingCycle;
use moltflow_core::clock::rfc3339;
use moltflow_core::plan::{DEFAULT_PLAN, Plan};
use moltflow_core::subscription::Status;
use moltflow_store::accounts::find_tenant;
use moltflow_store::billing::find_subscription;
use moltflow_types::{PlanLimits, PlanPrice, PlanPrices, PlanView, SubscriptionStatus, SubscriptionView};

use super::Billing;
use crate::services::failure::{Failure, Outcome};
use crate::services::principal::Authorized;
use crate::services::principal::guards::BillingRead;

pub fn limits_view(plan: &Plan) -> PlanLimits {
    PlanLimits {
        max_sessions: plan.limits.max_sessions,
        max_messages_per_month: plan.limits.max_messages_per_month,
        max_groups: plan.limits.max_groups,
        max_labels: plan.limits.max_labels,
        ai_replies_per_month: plan.limits.ai_replies_per_month,
    }
}

pub fn plan_view(plan: &Plan) -> PlanView {
    let price =
        |p: &moltflow_core::plan::Price| PlanPrice { amount_cents: p.amount_cents, currency: p.currency.clone() };
    PlanView {
        plan_id: plan.plan_id.clone(),
        display_name: plan.display_name.clone(),
        description: plan.description.clone(),
        prices: PlanPrices { monthly: price(&plan.monthly), yearly: price(&plan.yearly) },
        limits: limits_view(plan),
        features: plan.features.clone(),
    }
}

/// First millisecond of the next UTC month: when a free plan's monthly quotas reset.
fn next_month_start(ms: i64) -> i64 {
    let date = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    let (year, month) = if date.month() == time::Month::December {
        (date.year() + 1, time::Month::January)
    } else {
        (date.year(), date.month().next())
    };
    time::Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
        .unwrap_or(ms)
}

/// The wire status of a stored one (the same names; the wire enum is the API's, this one the
/// state machine's).
fn status_view(status: Status) -> SubscriptionStatus {
    match status {
        Status::Active => SubscriptionStatus::Active,
        Status::Trialing => SubscriptionStatus::Trialing,
        Status::PastDue => SubscriptionStatus::PastDue,
        Status::Unpaid => SubscriptionStatus::Unpaid,
        Status::Canceled => SubscriptionStatus::Canceled,
        Status::Incomplete => SubscriptionStatus::Incomplete,
    }
}

impl Billing<'_> {
    /// The plans on offer, in display order.
    pub fn plans(&self) -> Vec<PlanView> {
        self.plans.plans().iter().map(plan_view).collect()
    }

    fn plan_or_free(&self, plan_id: &str) -> Outcome<&Plan> {
        self.plans
            .get(plan_id)
            .or_else(|| self.plans.get(DEFAULT_PLAN))
            .ok_or_else(|| Failure::unexpected(anyhow::anyhow!("the plan catalogue has no {DEFAULT_PLAN} plan")))
    }

    /// The tenant's subscription: its status, and the plan and limits in force (the free plan's
    /// while it is `unpaid`, whatever it is subscribed to).
    pub async fn subscription(&self, p: &Authorized<BillingRead>) -> Outcome<SubscriptionView> {
        self.subscription_of(p.tenant_id()).await
    }

    /// [`Billing::subscription`] of a tenant the caller has proven access to some other way (a
    /// local checkout id or portal token, a use case of this crate).
    pub(crate) async fn subscription_of(&self, tenant_id: &str) -> Outcome<SubscriptionView> {
        let now = self.clock.now_ms();
        let mut conn = self.store.conn().await?;
        let tenant = find_tenant(&mut conn, tenant_id).await?.ok_or(Failure::NotFound("Tenant"))?;
        let sub = find_subscription(&mut conn, tenant_id).await?;
        drop(conn);
        let plan = self.plan_or_free(&tenant.plan_id)?;
        let usage = self.usage.subscription_usage(tenant_id).await?;
        let view = match sub.filter(|s| s.status != Status::Canceled) {
            Some(s) => SubscriptionView {
                plan_id: plan.plan_id.clone(),
                display_name: plan.display_name.clone(),
                status: status_view(s.status),
                billing_cycle: s.billing_cycle,
                current_period_end: s.current_period_end.map(rfc3339),
                cancel_at_period_end: s.cancel_at_period_end,
                limits: limits_view(plan),
                usage,
            },
            None => SubscriptionView {
                plan_id: plan.plan_id.clone(),
                display_name: plan.display_name.clone(),
                status: SubscriptionStatus::Active,
                billing_cycle: BillingCycle::Monthly,
                current_period_end: Some(rfc3339(next_month_start(now))),
                cancel_at_period_end: false,
                limits: limits_view(plan),
                usage,
            },
        };
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_status_has_the_wire_status_of_the_same_name() {
        for status in Status::ALL {
            assert_eq!(status_view(*status).as_str(), status.as_str());
        }
    }

    #[test]
    fn free_quotas_reset_on_the_first_of_the_next_month() {
        // 2026-12-24T10:00:00Z → 2027-01-01T00:00:00Z
        assert_eq!(next_month_start(1_798_106_400_000), 1_798_761_600_000);
    }
}
