//! Ending a tenant's subscription before the tenant is erased (`DELETE /users/me` of its sole
//! member): once the tenant is gone nobody can cancel it here, and the provider would go on
//! charging a customer who no longer exists.

use moltflow_core::billing::Provider as ProviderKind;
use moltflow_core::subscription::Status;
use moltflow_store::AsDbConn;
use moltflow_store::billing::{SubscriptionRow, find_subscription};

use super::Billing;
use crate::billing::{ProviderClient, ProviderError};
use crate::services::failure::Outcome;

/// The tenant's subscription that the provider may still charge for (any status but
/// `canceled`: `past_due` and `unpaid` ones are still being retried), if the provider holds it.
pub async fn live_provider_subscription(
    c: &mut impl AsDbConn,
    tenant_id: &str,
) -> moltflow_store::Result<Option<SubscriptionRow>> {
    let sub = find_subscription(c, tenant_id).await?;
    Ok(sub.filter(|s| s.provider != ProviderKind::Local && s.status != Status::Canceled))
}

impl Billing<'_> {
    /// Cancels the tenant's live subscription at the provider now (not at the period's end). A
    /// failure (`Upstream` or `Unavailable` from the provider) means nothing was ended and the
    /// caller must erase nothing. A local subscription is erased with its tenant.
    pub(crate) async fn end_subscription_before_erasure(&self, tenant_id: &str) -> Outcome<()> {
        let sub = {
            let mut conn = self.store.conn().await?;
            live_provider_subscription(&mut conn, tenant_id).await?
        };
        let Some(sub) = sub else { return Ok(()) };
        if sub.subscription_id.is_empty() {
            tracing::warn!(tenant_id, "live subscription without a provider id; nothing to cancel");
            return Ok(());
        }
        let ProviderClient::Stripe(stripe) = self.provider else {
            // Stripe holds it but this node cannot reach Stripe: refuse rather than leave it charging.
            return Err(ProviderError::Unavailable(format!(
                "subscription {} is held by {} but MOLTFLOW_BILLING_PROVIDER is not that provider",
                sub.subscription_id, sub.provider
            ))
            .into());
        };
        match stripe.cancel_now(&sub.subscription_id).await {
            Ok(()) => {}
            // Already ended at Stripe (deleted there before its webhook reached us).
            Err(ProviderError::Missing(_)) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(tenant_id, subscription = %sub.subscription_id, "subscription canceled before erasing its tenant");
        Ok(())
    }
}
