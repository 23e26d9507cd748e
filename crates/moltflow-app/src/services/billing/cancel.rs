//! Cancelling at the period's end: the plan stays until the provider says the period ended.

use moltflow_core::billing::Provider as ProviderKind;
use moltflow_core::clock::rfc3339;
use moltflow_core::subscription::Status;
use moltflow_store::billing::{SubscriptionRow, find_subscription, upsert_subscription};
use moltflow_types::SubscriptionView;
use serde_json::json;

use super::Billing;
use crate::billing::Provider;
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Failure, Outcome};
use crate::services::origin::Origin;

impl Billing<'_> {
    /// Cancels at the period's end (`no_subscription` when there is no paid one); answers the
    /// subscription as it now is.
    pub async fn cancel(&self, tenant_id: &str, actor: Actor, origin: &Origin) -> Outcome<SubscriptionView> {
        let sub = {
            let mut conn = self.store.conn().await?;
            find_subscription(&mut conn, tenant_id).await?
        };
        let Some(sub) = sub.filter(|s| !matches!(s.status, Status::Canceled | Status::Incomplete)) else {
            return Err(Failure::conflict("no_subscription", "There is no paid subscription to cancel"));
        };
        if !sub.cancel_at_period_end {
            let period_end = match (self.provider, sub.provider) {
                (Provider::Stripe(stripe), ProviderKind::Stripe) => {
                    stripe.cancel_at_period_end(&sub.subscription_id).await?
                }
                _ => None,
            };
            let now = self.clock.now_ms();
            let mut tx = self.store.begin().await?;
            let row = SubscriptionRow {
                cancel_at_period_end: true,
                current_period_end: period_end.or(sub.current_period_end),
                updated_at: now,
                ..sub.clone()
            };
            upsert_subscription(&mut tx, &row).await?;
            let entry = Entry {
                tenant_id,
                actor,
                action: "subscription.cancel_requested",
                target: Some(sub.subscription_id.clone()),
                meta: origin,
                details: json!({"plan_id": sub.plan_id, "ends_at": sub.current_period_end.map(rfc3339)}),
            };
            audit::record_at(&mut tx, entry, now).await?;
            tx.commit().await?;
        }
        self.subscription(tenant_id).await
    }
}
