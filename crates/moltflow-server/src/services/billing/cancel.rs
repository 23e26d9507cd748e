//! Cancelling at the period's end: the plan stays until the provider says the period ended.

use moltflow_core::billing::Provider as ProviderKind;
use moltflow_core::clock::{now_ms, rfc3339};
use moltflow_core::subscription::Status;
use moltflow_store::billing::{SubscriptionRow, find_subscription, upsert_subscription};
use moltflow_types::SubscriptionView;
use serde_json::json;

use super::plans::subscription_view;
use crate::billing::Provider;
use crate::error::{ApiError, ApiResult};
use crate::services::origin::Origin;
use crate::services::audit::{self, Actor, Entry};
use crate::state::App;

/// Cancels at the period's end: the plan stays until the provider says the period ended.
pub async fn cancel(app: &App, tenant_id: &str, actor: Actor, meta: &Origin) -> ApiResult<SubscriptionView> {
    let sub = {
        let mut conn = app.store.conn().await?;
        find_subscription(&mut conn, tenant_id).await?
    };
    let Some(sub) = sub.filter(|s| !matches!(s.status, Status::Canceled | Status::Incomplete)) else {
        return Err(ApiError::conflict("no_subscription", "There is no paid subscription to cancel"));
    };
    if !sub.cancel_at_period_end {
        let period_end = match (&app.billing.provider, sub.provider) {
            (Provider::Stripe(stripe), ProviderKind::Stripe) => {
                stripe.cancel_at_period_end(&sub.subscription_id).await?
            }
            _ => None,
        };
        let mut tx = app.store.begin().await?;
        upsert_subscription(
            &mut tx,
            &SubscriptionRow {
                cancel_at_period_end: true,
                current_period_end: period_end.or(sub.current_period_end),
                updated_at: now_ms(),
                ..sub.clone()
            },
        )
        .await?;
        audit::record(
            &mut tx,
            Entry {
                tenant_id,
                actor,
                action: "subscription.cancel_requested",
                target: Some(sub.subscription_id.clone()),
                meta,
                details: json!({"plan_id": sub.plan_id, "ends_at": sub.current_period_end.map(rfc3339)}),
            },
        )
        .await?;
        tx.commit().await?;
    }
    subscription_view(app, tenant_id).await
}
