//! Cancelling at the period's end: the plan stays until the provider says the period ended.

use moltflow_core::billing::Provider as ProviderKind;
use moltflow_core::clock::rfc3339;
use moltflow_core::subscription::Status;
use moltflow_store::billing::{SubscriptionRow, find_subscription, upsert_subscription};
use moltflow_types::SubscriptionView;
use serde_json::json;

use super::Billing;
use crate::billing::ProviderClient;
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Failure, Outcome};
use crate::services::origin::Origin;
use crate::services::principal::Authorized;
use crate::services::principal::guards::BillingManage;

impl Billing<'_> {
    /// Cancels at the period's end (`no_subscription` when there is no paid one); answers the
    /// subscription as it now is.
    pub async fn cancel(&self, p: &Authorized<BillingManage>, origin: &Origin) -> Outcome<SubscriptionView> {
        let (kind, id) = p.actor();
        self.cancel_for(p.tenant_id(), Actor { kind, id: Some(id) }, origin).await
    }

    /// The local portal's cancel button: its token (an hour's, handed to the tenant's owner) is
    /// the proof.
    pub async fn cancel_from_local_portal(&self, token: &str, origin: &Origin) -> Outcome<SubscriptionView> {
        let tenant_id = self.local_portal_tenant(token)?;
        self.cancel_for(&tenant_id, Actor { kind: "system", id: Some("local-portal".into()) }, origin).await
    }

    async fn cancel_for(&self, tenant_id: &str, actor: Actor, origin: &Origin) -> Outcome<SubscriptionView> {
        let sub = {
            let mut conn = self.store.conn().await?;
            find_subscription(&mut conn, tenant_id).await?
        };
        let Some(sub) = sub.filter(|s| !matches!(s.status, Status::Canceled | Status::Incomplete)) else {
            return Err(Failure::conflict("no_subscription", "There is no paid subscription to cancel"));
        };
        if !sub.cancel_at_period_end {
            let period_end = match (self.provider, sub.provider) {
                (ProviderClient::Stripe(stripe), ProviderKind::Stripe) => {
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
        self.subscription_of(tenant_id).await
    }
}
