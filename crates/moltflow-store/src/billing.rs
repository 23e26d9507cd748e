//! Billing state: customers, subscriptions, checkout sessions, applied provider events.

use moltflow_core::billing::{BillingCycle, Provider};
use moltflow_core::subscription::Status;
use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct SubscriptionRow {
    pub tenant_id: String,
    /// The enums are decoded as the row is read (stored as their text): a value no variant
    /// names is a decode error of the query, not something each caller re-parses.
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub subscription_id: String,
    pub plan_id: String,
    #[sqlx(try_from = "String")]
    pub billing_cycle: BillingCycle,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    /// Provider time (ms) of the newest event applied: older events are ignored.
    pub last_event_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct CheckoutRow {
    pub id: String,
    pub tenant_id: String,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub plan_id: String,
    #[sqlx(try_from = "String")]
    pub billing_cycle: BillingCycle,
    pub url: String,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

#[instrument(skip_all)]
pub async fn find_customer(c: &mut impl AsDbConn, tenant_id: &str) -> Result<Option<String>> {
    on_conn!(c, c => sqlx::query_scalar::<_, String>("SELECT customer_id FROM billing_customers WHERE tenant_id = $1")
        .bind(tenant_id).fetch_optional(c).await)
}

#[instrument(skip_all)]
pub async fn find_customer_tenant(c: &mut impl AsDbConn, customer_id: &str) -> Result<Option<String>> {
    on_conn!(c, c => sqlx::query_scalar::<_, String>("SELECT tenant_id FROM billing_customers WHERE customer_id = $1")
        .bind(customer_id).fetch_optional(c).await)
}

/// Keeps the first customer stored for a tenant.
#[instrument(skip_all)]
pub async fn insert_customer(
    c: &mut impl AsDbConn,
    tenant_id: &str,
    provider: Provider,
    customer_id: &str,
    at: i64,
) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO billing_customers (tenant_id, provider, customer_id, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id) DO NOTHING")
        .bind(tenant_id).bind(provider.as_str()).bind(customer_id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn find_subscription(c: &mut impl AsDbConn, tenant_id: &str) -> Result<Option<SubscriptionRow>> {
    const SQL: &str = "SELECT tenant_id, provider, subscription_id, plan_id, billing_cycle, status, \
         current_period_end, cancel_at_period_end, last_event_at, updated_at FROM subscriptions WHERE tenant_id = $1";
    on_conn!(c, c => sqlx::query_as::<_, SubscriptionRow>(SQL).bind(tenant_id).fetch_optional(c).await)
}

#[instrument(skip_all)]
pub async fn upsert_subscription(c: &mut impl AsDbConn, s: &SubscriptionRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO subscriptions (tenant_id, provider, subscription_id, plan_id, billing_cycle, status, \
         current_period_end, cancel_at_period_end, last_event_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (tenant_id) DO UPDATE SET provider = excluded.provider, subscription_id = excluded.subscription_id, \
         plan_id = excluded.plan_id, billing_cycle = excluded.billing_cycle, status = excluded.status, \
         current_period_end = excluded.current_period_end, cancel_at_period_end = excluded.cancel_at_period_end, \
         last_event_at = excluded.last_event_at, updated_at = excluded.updated_at")
        .bind(&s.tenant_id).bind(s.provider.as_str()).bind(&s.subscription_id).bind(&s.plan_id)
        .bind(s.billing_cycle.as_str()).bind(s.status.as_str()).bind(s.current_period_end).bind(s.cancel_at_period_end).bind(s.last_event_at).bind(s.updated_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Subscriptions set to end at their period's end whose period has ended (local provider).
#[instrument(skip_all)]
pub async fn subscriptions_ending(c: &mut impl AsDbConn, now: i64) -> Result<Vec<SubscriptionRow>> {
    on_conn!(c, c => sqlx::query_as::<_, SubscriptionRow>(
        "SELECT tenant_id, provider, subscription_id, plan_id, billing_cycle, status, current_period_end, \
         cancel_at_period_end, last_event_at, updated_at FROM subscriptions \
         WHERE provider = $2 AND cancel_at_period_end = TRUE AND status <> $3 AND current_period_end <= $1")
        .bind(now).bind(Provider::Local.as_str()).bind(Status::Canceled.as_str()).fetch_all(c).await)
}

#[instrument(skip_all)]
pub async fn set_tenant_plan(c: &mut impl AsDbConn, tenant_id: &str, plan_id: &str, at: i64) -> Result<()> {
    on_conn!(c, c => sqlx::query("UPDATE tenants SET plan_id = $2, updated_at = $3 WHERE id = $1")
        .bind(tenant_id).bind(plan_id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Records a provider event id; false when it was applied before (a replay).
#[instrument(skip_all)]
pub async fn record_event(
    c: &mut impl AsDbConn,
    event_id: &str,
    event_type: &str,
    tenant_id: Option<&str>,
    at: i64,
) -> Result<bool> {
    let n = on_conn!(c, c => sqlx::query(
        "INSERT INTO billing_events (event_id, event_type, tenant_id, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (event_id) DO NOTHING")
        .bind(event_id).bind(event_type).bind(tenant_id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

#[instrument(skip_all)]
pub async fn insert_checkout(c: &mut impl AsDbConn, s: &CheckoutRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO checkout_sessions (id, tenant_id, provider, plan_id, billing_cycle, url, created_at, completed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&s.id).bind(&s.tenant_id).bind(s.provider.as_str()).bind(&s.plan_id).bind(s.billing_cycle.as_str()).bind(&s.url)
        .bind(s.created_at).bind(s.completed_at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn find_checkout(c: &mut impl AsDbConn, id: &str) -> Result<Option<CheckoutRow>> {
    on_conn!(c, c => sqlx::query_as::<_, CheckoutRow>(
        "SELECT id, tenant_id, provider, plan_id, billing_cycle, url, created_at, completed_at FROM checkout_sessions WHERE id = $1")
        .bind(id).fetch_optional(c).await)
}

/// Marks a checkout completed; false when it already was.
#[instrument(skip_all)]
pub async fn complete_checkout(c: &mut impl AsDbConn, id: &str, at: i64) -> Result<bool> {
    let n = on_conn!(c, c => sqlx::query(
        "UPDATE checkout_sessions SET completed_at = $2 WHERE id = $1 AND completed_at IS NULL")
        .bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}
