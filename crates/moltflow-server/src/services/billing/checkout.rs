//! Checkout: a validated intent (plan, cycle, redirect URLs), opened at the provider, then
//! stored with the provider's customer.

use moltflow_core::billing::{BillingCycle, Provider as ProviderKind};
use moltflow_core::clock::now_ms;
use moltflow_core::plan::Plan;
use moltflow_core::secret::new_token;
use moltflow_store::Tx;
use moltflow_store::billing::{CheckoutRow, find_customer, find_subscription, insert_checkout, insert_customer};
use moltflow_types::{CheckoutRequest, CheckoutResponse};
use serde_json::json;

use crate::billing::stripe::CheckoutParams;
use crate::billing::{Provider, ProviderError};
use crate::error::{ApiError, ApiResult};
use crate::extract::Checks;
use crate::services::origin::Origin;
use crate::services::audit::{self, Actor, Entry};
use crate::state::App;

/// A redirect target on the public origin or an allow-listed one (no open redirects).
pub(super) fn check_redirect(
    app: &App,
    checks: &mut Checks,
    field: &str,
    raw: Option<&str>,
    default: String,
) -> String {
    let Some(raw) = raw else { return default };
    let allowed = url::Url::parse(raw).ok().filter(|u| matches!(u.scheme(), "http" | "https")).is_some_and(|u| {
        let origin = u.origin().ascii_serialization();
        let public =
            url::Url::parse(&app.config.public_url).map(|p| p.origin().ascii_serialization()).unwrap_or_default();
        origin == public || app.config.billing_redirect_origins.contains(&origin)
    });
    if !allowed {
        checks.fail(
            &["body", field],
            "URL must be on this service's public origin or an allow-listed one",
            "value_error",
        );
    }
    raw.to_owned()
}

/// The cycle the request names; an unknown one is recorded in `checks` (whose `finish` then
/// fails, so the monthly placeholder returned with it is never used).
pub(super) fn check_cycle(checks: &mut Checks, cycle: &str) -> BillingCycle {
    cycle.parse().unwrap_or_else(|_| {
        checks.fail(&["body", "billing_cycle"], "Input should be 'monthly' or 'yearly'", "enum");
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

/// Checks a checkout's plan, cycle and URLs: `422` for the shape, `404` for an unknown plan,
/// `409` for a free plan.
pub fn validate_intent<'a>(
    app: &'a App,
    plan_id: &str,
    cycle: &str,
    success_url: Option<&str>,
    cancel_url: Option<&str>,
) -> ApiResult<Intent<'a>> {
    let mut checks = Checks::default();
    let cycle = check_cycle(&mut checks, cycle);
    let base = &app.config.public_url;
    let success_url =
        check_redirect(app, &mut checks, "success_url", success_url, format!("{base}/billing/done?checkout=success"));
    let cancel_url =
        check_redirect(app, &mut checks, "cancel_url", cancel_url, format!("{base}/billing/done?checkout=canceled"));
    checks.finish()?;
    let plan = app.plans.get(plan_id).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "plan_not_found",
            format!("No plan {:?}; see GET /billing/plans", plan_id.chars().take(64).collect::<String>()),
        )
    })?;
    if plan.is_free() || plan.price(cycle).amount_cents == 0 {
        return Err(ApiError::conflict("free_plan", "The free plan needs no checkout"));
    }
    Ok(Intent { plan, cycle, success_url, cancel_url })
}

/// Opens a checkout with the provider; the caller stores the returned row.
pub(super) async fn open_checkout(
    app: &App,
    tenant_id: &str,
    email: &str,
    intent: &Intent<'_>,
) -> Result<(CheckoutRow, Option<String>), ProviderError> {
    let now = now_ms();
    match &app.billing.provider {
        Provider::Local => {
            let id = format!("cs_local_{}", new_token());
            let url = format!("{}/api/v2/billing/local/checkout/{id}", app.config.public_url);
            Ok((checkout_row(id, url, tenant_id, ProviderKind::Local, intent, now), None))
        }
        Provider::Stripe(stripe) => {
            let existing = {
                let mut conn = app.store.conn().await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
                find_customer(&mut conn, tenant_id).await.map_err(|e| ProviderError::Unavailable(e.to_string()))?
            };
            let customer = match existing {
                Some(c) => c,
                None => stripe.create_customer(tenant_id, email).await?,
            };
            let price_id = app
                .billing
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
            Ok((checkout_row(id, url, tenant_id, ProviderKind::Stripe, intent, now), Some(customer)))
        }
    }
}

fn checkout_row(
    id: String,
    url: String,
    tenant_id: &str,
    provider: ProviderKind,
    intent: &Intent<'_>,
    now: i64,
) -> CheckoutRow {
    CheckoutRow {
        id,
        tenant_id: tenant_id.to_owned(),
        provider,
        plan_id: intent.plan.plan_id.clone(),
        billing_cycle: intent.cycle,
        url,
        created_at: now,
        completed_at: None,
    }
}

/// Stores an opened checkout (and the provider's customer) in `tx`.
pub async fn store_checkout(tx: &mut Tx, app: &App, row: &CheckoutRow, customer: Option<&str>) -> ApiResult<()> {
    if let Some(customer) = customer {
        insert_customer(tx, &row.tenant_id, app.billing.provider.kind(), customer, row.created_at).await?;
    }
    insert_checkout(tx, row).await?;
    Ok(())
}

pub async fn checkout(
    app: &App,
    p: &crate::principal::Principal,
    req: CheckoutRequest,
    meta: &Origin,
) -> ApiResult<CheckoutResponse> {
    let intent =
        validate_intent(app, &req.plan_id, &req.billing_cycle, req.success_url.as_deref(), req.cancel_url.as_deref())?;
    {
        let mut conn = app.store.conn().await?;
        let current = find_subscription(&mut conn, p.tenant_id()).await?;
        let same = current.is_some_and(|s| {
            s.plan_id == intent.plan.plan_id && s.billing_cycle == intent.cycle && s.status.grants_plan()
        });
        if same {
            return Err(ApiError::conflict("already_on_plan", "The tenant is already on this plan and cycle"));
        }
    }
    let (row, customer) = open_checkout(app, p.tenant_id(), &p.user.email, &intent).await?;
    let mut tx = app.store.begin().await?;
    store_checkout(&mut tx, app, &row, customer.as_deref()).await?;
    let (kind, id) = p.actor();
    audit::record(
        &mut tx,
        Entry {
            tenant_id: p.tenant_id(),
            actor: Actor { kind, id: Some(id) },
            action: "billing.checkout_started",
            target: Some(row.id.clone()),
            meta,
            details: json!({"plan_id": row.plan_id, "billing_cycle": row.billing_cycle.as_str(), "provider": row.provider.as_str()}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CheckoutResponse { checkout_url: row.url, session_id: row.id })
}
