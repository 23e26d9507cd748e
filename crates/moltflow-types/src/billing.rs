//! Billing bodies (API.md §6).

use moltflow_core::billing::BillingCycle;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::usage::SubscriptionUsage;

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct PlanPrice {
    /// What one billing cycle charges, in cents.
    pub amount_cents: u64,
    pub currency: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct PlanPrices {
    pub monthly: PlanPrice,
    pub yearly: PlanPrice,
}

/// `null` means unlimited.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct PlanLimits {
    pub max_sessions: Option<u64>,
    pub max_messages_per_month: Option<u64>,
    pub max_groups: Option<u64>,
    pub max_labels: Option<u64>,
    pub ai_replies_per_month: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "plan_id": "pro", "display_name": "Pro", "description": "For growing teams automating sales on WhatsApp",
    "prices": {"monthly": {"amount_cents": 2990, "currency": "usd"}, "yearly": {"amount_cents": 29900, "currency": "usd"}},
    "limits": {"max_sessions": 3, "max_messages_per_month": 5000, "max_groups": 10, "max_labels": 50, "ai_replies_per_month": 500},
    "features": ["3 WhatsApp sessions", "5,000 messages a month"]
}))]
pub struct PlanView {
    pub plan_id: String,
    pub display_name: String,
    pub description: String,
    pub prices: PlanPrices,
    pub limits: PlanLimits,
    pub features: Vec<String>,
}

/// `past_due`: a payment failed and the provider is retrying; the plan is kept. `unpaid`: the
/// provider gave up (or paused the subscription); the free plan's limits apply until an invoice
/// is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Trialing,
    PastDue,
    Unpaid,
    Canceled,
    Incomplete,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Incomplete => "incomplete",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "plan_id": "pro", "display_name": "Pro", "status": "active", "billing_cycle": "monthly",
    "current_period_end": "2026-12-24T10:00:00Z", "cancel_at_period_end": false,
    "limits": {"max_sessions": 3, "max_messages_per_month": 5000, "max_groups": 10, "max_labels": 50, "ai_replies_per_month": 500},
    "usage": {"sessions": 2, "messages_this_month": 1247, "groups": 5, "labels": 12, "ai_replies_this_month": 89}
}))]
pub struct SubscriptionView {
    /// The plan whose limits are in force (`free` while the subscription is `unpaid`).
    pub plan_id: String,
    pub display_name: String,
    pub status: SubscriptionStatus,
    /// `monthly` or `yearly`.
    #[schema(value_type = String)]
    pub billing_cycle: BillingCycle,
    /// The end of the billing period (what is paid for, and when a cancelled plan ends). Quotas do
    /// not follow it: they count the calendar month (UTC) and reset on the 1st, see
    /// `GET /usage/current` `period_end`.
    pub current_period_end: Option<String>,
    pub cancel_at_period_end: bool,
    pub limits: PlanLimits,
    /// This calendar month's counters (not the billing period's) and the current gauges.
    pub usage: SubscriptionUsage,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan_id": "pro", "billing_cycle": "monthly"}))]
pub struct CheckoutRequest {
    pub plan_id: String,
    /// `monthly` or `yearly`.
    #[schema(pattern = "^(monthly|yearly)$")]
    pub billing_cycle: String,
    /// Where to return after paying: the public origin or an allow-listed one.
    #[serde(default)]
    pub success_url: Option<String>,
    #[serde(default)]
    pub cancel_url: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"checkout_url": "https://checkout.stripe.com/c/pay/cs_live_…", "session_id": "cs_live_…"}))]
pub struct CheckoutResponse {
    pub checkout_url: String,
    pub session_id: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"return_url": "http://127.0.0.1:8080/settings/billing"}))]
pub struct PortalRequest {
    /// Where the portal returns to: the public origin or an allow-listed one.
    #[serde(default)]
    pub return_url: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"portal_url": "https://billing.stripe.com/p/session/…"}))]
pub struct PortalResponse {
    pub portal_url: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ana@example.com", "full_name": "Ana Lima", "password": "sunny-tulip-harbor-42", "plan_id": "pro", "billing_cycle": "yearly", "tenant_name": "Lima Agency"}))]
pub struct SignupCheckoutRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 100)]
    pub full_name: String,
    #[serde(default)]
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    pub plan_id: String,
    #[schema(pattern = "^(monthly|yearly)$")]
    pub billing_cycle: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub tenant_name: Option<String>,
    #[serde(default)]
    pub success_url: Option<String>,
    #[serde(default)]
    pub cancel_url: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"checkout_url": "https://checkout.stripe.com/c/pay/cs_live_…", "session_id": "cs_live_…", "tenant_id": "0193a6c1-…", "user_id": "0193a6c2-…"}))]
pub struct SignupCheckoutResponse {
    pub checkout_url: String,
    pub session_id: String,
    pub tenant_id: String,
    pub user_id: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"received": true, "duplicate": false}))]
pub struct WebhookAck {
    pub received: bool,
    /// True when this event id was applied before (nothing changed).
    pub duplicate: bool,
}
