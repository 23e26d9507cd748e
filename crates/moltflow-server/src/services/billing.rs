//! Billing use cases: plans, the subscription view, checkout, portal, cancel, signup with
//! checkout; applying provider events (Stripe webhooks and the local provider's pay button go
//! through the same `apply_event`) in `events`; ending a subscription before its tenant is
//! erased in `erasure`.

mod erasure;
mod events;

pub use erasure::{end_subscription_before_erasure, live_provider_subscription};
pub use events::{apply_event, complete_local_checkout, end_due_local_subscriptions};

use moltflow_core::clock::{now_ms, rfc3339};
use moltflow_core::plan::{DEFAULT_PLAN, Plan};
use moltflow_core::secret::new_token;
use moltflow_core::subscription::Status;
use moltflow_store::Tx;
use moltflow_store::accounts::find_tenant;
use moltflow_store::billing::{
    CheckoutRow, SubscriptionRow, find_customer, find_subscription, insert_checkout, insert_customer,
    upsert_subscription,
};
use moltflow_types::{
    CheckoutRequest, CheckoutResponse, PlanLimits, PlanPrice, PlanPrices, PlanView, PortalResponse, SubscriptionStatus,
    SubscriptionUsage, SubscriptionView,
};
use serde_json::json;

use crate::auth::throttle::IpRates as _;
use crate::billing::stripe::CheckoutParams;
use crate::billing::{Provider, ProviderError};
use crate::error::{ApiError, ApiResult};
use crate::extract::Checks;
use crate::services::audit::{self, Actor, Entry};
use crate::services::origin::Origin;
use crate::state::App;

pub const CYCLES: &[&str] = &["monthly", "yearly"];

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

fn price_of<'a>(plan: &'a Plan, cycle: &str) -> &'a moltflow_core::plan::Price {
    if cycle == "yearly" { &plan.yearly } else { &plan.monthly }
}

fn is_free(plan: &Plan) -> bool {
    plan.monthly.amount_cents == 0 && plan.yearly.amount_cents == 0
}

fn plan_or_free<'a>(app: &'a App, plan_id: &str) -> ApiResult<&'a Plan> {
    app.plans.get(plan_id).or_else(|| app.plans.get(DEFAULT_PLAN)).ok_or_else(ApiError::internal)
}

/// The seed's `usage` block, from the metering numbers.
async fn usage_block(app: &App, tenant_id: &str) -> ApiResult<SubscriptionUsage> {
    crate::services::usage::report::subscription_usage(app, tenant_id).await
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

fn status_view(stored: &str) -> ApiResult<SubscriptionStatus> {
    let status = stored.parse::<Status>().map_err(|()| {
        tracing::error!(status = stored, "unknown subscription status stored");
        ApiError::internal()
    })?;
    Ok(match status {
        Status::Active => SubscriptionStatus::Active,
        Status::Trialing => SubscriptionStatus::Trialing,
        Status::PastDue => SubscriptionStatus::PastDue,
        Status::Unpaid => SubscriptionStatus::Unpaid,
        Status::Canceled => SubscriptionStatus::Canceled,
        Status::Incomplete => SubscriptionStatus::Incomplete,
    })
}

/// The tenant's subscription: its status, and the plan and limits in force (the free plan's
/// while it is `unpaid`, whatever it is subscribed to).
pub async fn subscription_view(app: &App, tenant_id: &str) -> ApiResult<SubscriptionView> {
    let mut conn = app.store.conn().await?;
    let tenant = find_tenant(&mut conn, tenant_id).await?.ok_or_else(|| ApiError::missing("Tenant"))?;
    let sub = find_subscription(&mut conn, tenant_id).await?;
    drop(conn);
    let plan = plan_or_free(app, &tenant.plan_id)?;
    let usage = usage_block(app, tenant_id).await?;
    let view = match sub.filter(|s| s.status != Status::Canceled.as_str()) {
        Some(s) => SubscriptionView {
            plan_id: plan.plan_id.clone(),
            display_name: plan.display_name.clone(),
            status: status_view(&s.status)?,
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
            billing_cycle: "monthly".to_owned(),
            current_period_end: Some(rfc3339(next_month_start(now_ms()))),
            cancel_at_period_end: false,
            limits: limits_view(plan),
            usage,
        },
    };
    Ok(view)
}

/// A redirect target on the public origin or an allow-listed one (no open redirects).
fn check_redirect(app: &App, checks: &mut Checks, field: &str, raw: Option<&str>, default: String) -> String {
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

fn check_cycle(checks: &mut Checks, cycle: &str) {
    if !CYCLES.contains(&cycle) {
        checks.fail(&["body", "billing_cycle"], "Input should be 'monthly' or 'yearly'", "enum");
    }
}

/// A validated checkout intent.
pub struct Intent<'a> {
    pub plan: &'a Plan,
    pub cycle: String,
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
    check_cycle(&mut checks, cycle);
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
    if is_free(plan) || price_of(plan, cycle).amount_cents == 0 {
        return Err(ApiError::conflict("free_plan", "The free plan needs no checkout"));
    }
    Ok(Intent { plan, cycle: cycle.to_owned(), success_url, cancel_url })
}

/// Opens a checkout with the provider; the caller stores the returned row.
async fn open_checkout(
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
            Ok((checkout_row(id, url, tenant_id, "local", intent, now), None))
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
                .get(&(intent.plan.plan_id.clone(), intent.cycle.clone()))
                .ok_or_else(|| ProviderError::Failed("no Stripe price configured for this plan".into()))?;
            let key = format!("checkout-{}", uuid::Uuid::new_v4());
            let (id, url) = stripe
                .create_checkout_session(&CheckoutParams {
                    customer_id: &customer,
                    price_id,
                    tenant_id,
                    plan_id: &intent.plan.plan_id,
                    billing_cycle: &intent.cycle,
                    success_url: &intent.success_url,
                    cancel_url: &intent.cancel_url,
                    idempotency_key: &key,
                })
                .await?;
            Ok((checkout_row(id, url, tenant_id, "stripe", intent, now), Some(customer)))
        }
    }
}

fn checkout_row(
    id: String,
    url: String,
    tenant_id: &str,
    provider: &str,
    intent: &Intent<'_>,
    now: i64,
) -> CheckoutRow {
    CheckoutRow {
        id,
        tenant_id: tenant_id.to_owned(),
        provider: provider.to_owned(),
        plan_id: intent.plan.plan_id.clone(),
        billing_cycle: intent.cycle.clone(),
        url,
        created_at: now,
        completed_at: None,
    }
}

/// Stores an opened checkout (and the provider's customer) in `tx`.
pub async fn store_checkout(tx: &mut Tx, app: &App, row: &CheckoutRow, customer: Option<&str>) -> ApiResult<()> {
    if let Some(customer) = customer {
        insert_customer(tx, &row.tenant_id, app.billing.provider.name(), customer, row.created_at).await?;
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
            s.plan_id == intent.plan.plan_id
                && s.billing_cycle == intent.cycle
                && s.status.parse::<Status>().is_ok_and(Status::grants_plan)
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
            details: json!({"plan_id": row.plan_id, "billing_cycle": row.billing_cycle, "provider": row.provider}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CheckoutResponse { checkout_url: row.url, session_id: row.id })
}

pub async fn portal(app: &App, tenant_id: &str, return_url: Option<&str>) -> ApiResult<PortalResponse> {
    let mut checks = Checks::default();
    let return_url = check_redirect(app, &mut checks, "return_url", return_url, app.config.public_url.clone());
    checks.finish()?;
    let customer = {
        let mut conn = app.store.conn().await?;
        find_customer(&mut conn, tenant_id).await?
    };
    let Some(customer) = customer else {
        return Err(ApiError::conflict(
            "no_billing_customer",
            "This tenant has never checked out; there is no billing account to manage",
        ));
    };
    let portal_url = match &app.billing.provider {
        Provider::Local => {
            let token = new_token();
            app.billing.local_portals.insert(token.clone(), tenant_id.to_owned());
            format!("{}/api/v2/billing/local/portal/{token}", app.config.public_url)
        }
        Provider::Stripe(stripe) => {
            stripe.create_portal_session(&customer, &return_url, &format!("portal-{}", uuid::Uuid::new_v4())).await?
        }
    };
    Ok(PortalResponse { portal_url })
}

/// Cancels at the period's end: the plan stays until the provider says the period ended.
pub async fn cancel(app: &App, tenant_id: &str, actor: Actor, meta: &Origin) -> ApiResult<SubscriptionView> {
    let sub = {
        let mut conn = app.store.conn().await?;
        find_subscription(&mut conn, tenant_id).await?
    };
    let Some(sub) = sub.filter(|s| s.status != Status::Canceled.as_str() && s.status != Status::Incomplete.as_str())
    else {
        return Err(ApiError::conflict("no_subscription", "There is no paid subscription to cancel"));
    };
    if !sub.cancel_at_period_end {
        let period_end = match (&app.billing.provider, sub.provider.as_str()) {
            (Provider::Stripe(stripe), "stripe") => stripe.cancel_at_period_end(&sub.subscription_id).await?,
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

/// What signing up with a plan gives: a signed-in pair for `free`, a checkout otherwise.
pub enum SignupOutcome {
    Tokens(moltflow_types::TokenPair),
    Checkout(moltflow_types::SignupCheckoutResponse),
}

/// Creates a tenant and its owner like register, then a checkout for a paid plan. Provider calls
/// happen before anything is written, so a provider failure leaves no account behind.
pub async fn signup_checkout(
    app: &App,
    req: moltflow_types::SignupCheckoutRequest,
    meta: &Origin,
) -> ApiResult<SignupOutcome> {
    use crate::services::auth::{account_rows, ensure_email_free, insert_account, validate_registration};
    use crate::services::sessions::{open_session, token_pair};
    app.limits
        .register_ip
        .check(meta.ip, app.clock.now_ms())
        .await
        .map_err(|wait| ApiError::too_many("rate_limited", "Too many sign-ups from this address", wait))?;
    let account = validate_registration(moltflow_types::RegisterRequest {
        email: req.email,
        password: req.password,
        full_name: req.full_name,
        tenant_name: req.tenant_name,
    })?;
    let free = app.plans.get(&req.plan_id).is_some_and(is_free);
    let intent = if free {
        let mut checks = Checks::default();
        check_cycle(&mut checks, &req.billing_cycle);
        checks.finish()?;
        None
    } else {
        Some(validate_intent(
            app,
            &req.plan_id,
            &req.billing_cycle,
            req.success_url.as_deref(),
            req.cancel_url.as_deref(),
        )?)
    };
    ensure_email_free(app, &account.email).await?;
    let password_hash = match &account.password {
        Some(p) => Some(app.hasher.hash(p).await?),
        None => None,
    };
    let (tenant, user) = account_rows(account, password_hash, now_ms());
    let Some(intent) = intent else {
        let mut tx = app.store.begin().await?;
        insert_account(app, &mut tx, &tenant, &user, meta).await?;
        let opened = open_session(&mut tx, &user, "register", meta).await?;
        tx.commit().await?;
        app.mailer.wake();
        return Ok(SignupOutcome::Tokens(token_pair(app, &user, opened)?));
    };
    let (row, customer) = open_checkout(app, &tenant.id, &user.email, &intent).await?;
    let mut tx = app.store.begin().await?;
    insert_account(app, &mut tx, &tenant, &user, meta).await?;
    store_checkout(&mut tx, app, &row, customer.as_deref()).await?;
    tx.commit().await?;
    app.mailer.wake();
    Ok(SignupOutcome::Checkout(moltflow_types::SignupCheckoutResponse {
        checkout_url: row.url,
        session_id: row.id,
        tenant_id: tenant.id,
        user_id: user.id,
    }))
}
