//! Checkout: a validated intent (plan, cycle, redirect URLs), opened at the provider, then
//! stored with the provider's customer.

use moltflow_core::billing::{BillingCycle, Provider as ProviderKind};
use moltflow_core::plan::Plan;
use moltflow_core::secret::new_token;
use moltflow_store::Tx;
use moltflow_store::billing::{CheckoutRow, find_customer, find_subscription, insert_checkout, insert_customer};
use moltflow_types::{CheckoutRequest, CheckoutResponse};
use serde_json::json;

use super::Billing;
use crate::billing::stripe::CheckoutParams;
use crate::billing::{ProviderClient, ProviderError};
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Failure, Issues, Outcome, Refusal};
use crate::services::origin::Origin;
use crate::services::principal::Authorized;
use crate::services::principal::guards::BillingManage;

/// The cycle the request names; an unknown one is recorded in `issues` (whose `finish` then
/// fails, so the monthly placeholder returned with it is never used).
pub fn check_cycle(issues: &mut Issues, cycle: &str) -> BillingCycle {
    cycle.parse().unwrap_or_else(|_| {
        issues.fail("billing_cycle", "Input should be 'monthly' or 'yearly'", "enum");
        BillingCycle::default()
    })
}

/// A validated checkout intent.
pub struct Intent<'a> {
    pub plan: &'a Plan,
    pub cycle: BillingCycle,
    pub success_url: String,
    pub cancel_url: String,
}

/// A checkout opened at the provider, not stored yet: its row, and the provider's customer when
/// one was created or found for it.
pub struct Opened {
    pub row: CheckoutRow,
    pub customer: Option<String>,
}

impl<'a> Billing<'a> {
    /// A redirect target on the public origin or an allow-listed one (no open redirects).
    pub(super) fn check_redirect(
        &self,
        issues: &mut Issues,
        field: &str,
        raw: Option<&str>,
        default: String,
    ) -> String {
        let Some(raw) = raw else { return default };
        let allowed = url::Url::parse(raw).ok().filter(|u| matches!(u.scheme(), "http" | "https")).is_some_and(|u| {
            let origin = u.origin().ascii_serialization();
            let public = url::Url::parse(self.public_url).map(|p| p.origin().ascii_serialization()).unwrap_or_default();
            origin == public || self.redirect_origins.contains(&origin)
        });
        if !allowed {
            issues.fail(field, "URL must be on this service's public origin or an allow-listed one", "value_error");
        }
        raw.to_owned()
    }

    /// Checks a checkout's plan, cycle and URLs: `Invalid` for the shape, `Unknown`
    /// (`plan_not_found`) for a plan not in the catalogue, `Conflict` (`free_plan`) for a free one.
    pub fn validate_intent(
        &self,
        plan_id: &str,
        cycle: &str,
        success_url: Option<&str>,
        cancel_url: Option<&str>,
    ) -> Outcome<Intent<'a>> {
        let mut issues = Issues::default();
        let cycle = check_cycle(&mut issues, cycle);
        let base = self.public_url;
        let success_url = self.check_redirect(
            &mut issues,
            "success_url",
            success_url,
            format!("{base}/billing/done?checkout=success"),
        );
        let cancel_url = self.check_redirect(
            &mut issues,
            "cancel_url",
            cancel_url,
            format!("{base}/billing/done?checkout=canceled"),
        );
        issues.finish()?;
        let plans: &'a moltflow_core::plan::PlanCatalogue = self.plans;
        let plan = plans.get(plan_id).ok_or_else(|| {
            Failure::Unknown(Refusal::new(
                "plan_not_found",
                format!("No plan {:?}; see GET /billing/plans", plan_id.chars().take(64).collect::<String>()),
            ))
        })?;
        if plan.is_free() || plan.price(cycle).amount_cents == 0 {
            return Err(Failure::conflict("free_plan", "The free plan needs no checkout"));
        }
        Ok(Intent { plan, cycle, success_url, cancel_url })
    }

    /// Opens a checkout with the provider; the caller stores it (`store_checkout`).
    pub(crate) async fn open_checkout(&self, tenant_id: &str, email: &str, intent: &Intent<'_>) -> Outcome<Opened> {
        let now = self.clock.now_ms();
        let row = |id: String, url: String, provider: ProviderKind| CheckoutRow {
            id,
            tenant_id: tenant_id.to_owned(),
            provider,
            plan_id: intent.plan.plan_id.clone(),
            billing_cycle: intent.cycle,
            url,
            created_at: now,
            completed_at: None,
        };
        match self.provider {
            ProviderClient::Local => {
                let id = format!("cs_local_{}", new_token());
                let url = format!("{}/api/v2/billing/local/checkout/{id}", self.public_url);
                Ok(Opened { row: row(id, url, ProviderKind::Local), customer: None })
            }
            ProviderClient::Stripe(stripe) => {
                let existing = {
                    let unavailable = |e: moltflow_store::StoreError| ProviderError::Unavailable(e.to_string());
                    let mut conn = self.store.conn().await.map_err(unavailable)?;
                    find_customer(&mut conn, tenant_id).await.map_err(unavailable)?
                };
                let customer = match existing {
                    Some(c) => c,
                    None => stripe.create_customer(tenant_id, email).await?,
                };
                let price_id = self
                    .prices
                    .get(&(intent.plan.plan_id.clone(), intent.cycle))
                    .ok_or_else(|| ProviderError::Failed("no Stripe price configured for this plan".into()))?;
                let key = format!("checkout-{}", uuid::Uuid::new_v4());
                let (id, url) = stripe
                    .create_checkout_session(&CheckoutParams {
                        customer_id: &customer,
                        price_id,
                        tenant_id,
                        plan_id: &intent.plan.plan_id,
                        billing_cycle: intent.cycle,
                        success_url: &intent.success_url,
                        cancel_url: &intent.cancel_url,
                        idempotency_key: &key,
                    })
                    .await?;
                Ok(Opened { row: row(id, url, ProviderKind::Stripe), customer: Some(customer) })
            }
        }
    }

    /// Stores an opened checkout (and the provider's customer) in `tx`.
    pub(crate) async fn store_checkout(&self, tx: &mut Tx, opened: &Opened) -> Outcome<()> {
        let row = &opened.row;
        if let Some(customer) = &opened.customer {
            insert_customer(tx, &row.tenant_id, self.provider.kind(), customer, row.created_at).await?;
        }
        insert_checkout(tx, row).await?;
        Ok(())
    }

    /// A checkout of a paid plan for the caller's tenant (`already_on_plan` when it has that
    /// plan and cycle already).
    pub async fn checkout(
        &self,
        p: &Authorized<BillingManage>,
        req: CheckoutRequest,
        origin: &Origin,
    ) -> Outcome<CheckoutResponse> {
        let intent = self.validate_intent(
            &req.plan_id,
            &req.billing_cycle,
            req.success_url.as_deref(),
            req.cancel_url.as_deref(),
        )?;
        {
            let mut conn = self.store.conn().await?;
            let current = find_subscription(&mut conn, p.tenant_id()).await?;
            let same = current.is_some_and(|s| {
                s.plan_id == intent.plan.plan_id && s.billing_cycle == intent.cycle && s.status.grants_plan()
            });
            if same {
                return Err(Failure::conflict("already_on_plan", "The tenant is already on this plan and cycle"));
            }
        }
        let opened = self.open_checkout(p.tenant_id(), &p.user.email, &intent).await?;
        let now = opened.row.created_at;
        let mut tx = self.store.begin().await?;
        self.store_checkout(&mut tx, &opened).await?;
        let (kind, id) = p.actor();
        let row = opened.row;
        audit::record_at(
            &mut tx,
            Entry {
                tenant_id: p.tenant_id(),
                actor: Actor { kind, id: Some(id) },
                action: "billing.checkout_started",
                target: Some(row.id.clone()),
                meta: origin,
                details: json!({"plan_id": row.plan_id, "billing_cycle": row.billing_cycle.as_str(), "provider": row.provider.as_str()}),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(CheckoutResponse { checkout_url: row.url, session_id: row.id })
    }
}
