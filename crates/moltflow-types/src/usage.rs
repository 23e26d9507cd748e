//! Usage metering bodies (API.md §7).
//!
//! Quantities arrive as JSON numbers and are checked by the service (so that `1.5`, `-1` and
//! `2^63` get a located `422` in the contract's words rather than a serde message).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Number;
use utoipa::ToSchema;

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"events": [
    {"id": "msg-8f2a91", "metric": "messages", "quantity": 1, "session_id": "wa-sales-1", "timestamp": "2026-11-24T10:00:00Z"},
    {"id": "ai-77c0", "metric": "ai_replies", "quantity": 1}
]}))]
pub struct UsageEventsRequest {
    /// 1 to 1000 events.
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<UsageEvent>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEvent {
    /// The idempotency key of the event within the tenant (1–128 characters).
    #[schema(min_length = 1, max_length = 128)]
    pub id: String,
    /// `messages` or `ai_replies` (gauges are set with `PUT /usage/gauges`).
    #[schema(pattern = "^(messages|ai_replies)$")]
    pub metric: String,
    /// An integer from 1 to 1,000,000.
    #[schema(value_type = u64, minimum = 1, maximum = 1000000)]
    pub quantity: Number,
    /// The WhatsApp session the usage belongs to (1–128 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub session_id: Option<String>,
    /// RFC 3339; at most 35 days old and 5 minutes ahead. Defaults to the time of receipt.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"accepted": 998, "duplicates": 2}))]
pub struct UsageEventsResponse {
    /// Events counted by this request.
    pub accepted: u64,
    /// Events whose id the tenant had reported before (not counted again).
    pub duplicates: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"metric": "messages", "quantity": 1, "session_id": "wa-sales-1", "idempotency_key": "send-3f9a2c"}))]
pub struct ConsumeRequest {
    /// `messages` or `ai_replies`.
    #[schema(pattern = "^(messages|ai_replies)$")]
    pub metric: String,
    /// An integer from 1 to 1,000,000.
    #[schema(value_type = u64, minimum = 1, maximum = 1000000)]
    pub quantity: Number,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub session_id: Option<String>,
    /// A repeated key is counted once and answered as the first time (1–128 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"allowed": true, "metric": "messages", "used": 1201, "limit": 5000, "remaining": 3799}))]
pub struct ConsumeResponse {
    pub allowed: bool,
    pub metric: String,
    /// Used this month, this consume included.
    pub used: u64,
    /// `null`: unlimited.
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
}

/// `429 quota_exceeded`: the consume was not counted.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"detail": "Monthly messages quota exceeded", "code": "quota_exceeded", "request_id": "0193a6c1-…",
    "metric": "messages", "limit": 5000, "used": 4999, "resets_at": "2026-12-01T00:00:00Z"}))]
pub struct QuotaExceededBody {
    pub detail: String,
    pub code: String,
    pub request_id: String,
    pub metric: String,
    pub limit: u64,
    pub used: u64,
    /// Start of the next calendar month, UTC.
    pub resets_at: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sessions": 2, "labels": 14}))]
pub struct GaugesRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub sessions: Option<Number>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub groups: Option<Number>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub labels: Option<Number>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"sessions": 2, "groups": 0, "labels": 14}))]
pub struct Gauges {
    pub sessions: u64,
    pub groups: u64,
    pub labels: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct MetricUsage {
    pub used: u64,
    /// `null`: unlimited (and then `remaining` and `percent` are `null` too); `0`: not included in
    /// the plan (`included: false`).
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// `used / limit` in percent, two decimals; may pass 100 when reported events overshoot.
    /// `null` when the metric is unlimited or not included in the plan (limit `0`).
    pub percent: Option<f64>,
    /// `false` when the plan does not include the metric at all (limit `0`, e.g. `ai_replies` on
    /// `free`): every consume is refused. `true` otherwise, unlimited included.
    pub included: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct UsageMetrics {
    pub messages: MetricUsage,
    pub ai_replies: MetricUsage,
    pub sessions: MetricUsage,
    pub groups: MetricUsage,
    pub labels: MetricUsage,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "period_start": "2026-11-01T00:00:00Z", "period_end": "2026-12-01T00:00:00Z", "plan_id": "pro",
    "metrics": {
        "messages": {"used": 1201, "limit": 5000, "remaining": 3799, "percent": 24.02, "included": true},
        "ai_replies": {"used": 40, "limit": 500, "remaining": 460, "percent": 8.0, "included": true},
        "sessions": {"used": 2, "limit": 3, "remaining": 1, "percent": 66.67, "included": true},
        "groups": {"used": 0, "limit": 10, "remaining": 10, "percent": 0.0, "included": true},
        "labels": {"used": 14, "limit": 50, "remaining": 36, "percent": 28.0, "included": true}
    }
}))]
pub struct UsageCurrent {
    /// The quota period: quotas follow the calendar month (UTC), whatever the billing period.
    /// An upgrade mid-month raises the limits at once; the counters reset on the 1st.
    pub period_start: String,
    /// Exclusive: the start of the next month, when counters reset. It is not the subscription's
    /// `current_period_end` (the billing period, which may end on another day).
    pub period_end: String,
    pub plan_id: String,
    pub metrics: UsageMetrics,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"month": "2026-10", "messages": 4210, "ai_replies": 388}))]
pub struct UsageMonth {
    pub month: String,
    pub messages: u64,
    pub ai_replies: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct UsageDay {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub messages: u64,
    pub ai_replies: u64,
    /// Messages per WhatsApp session, sessions with none that day left out.
    pub by_session: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"month": "2026-11", "days": [
    {"date": "2026-11-01", "messages": 0, "ai_replies": 0, "by_session": {}},
    {"date": "2026-11-02", "messages": 120, "ai_replies": 9, "by_session": {"wa-sales-1": 80, "wa-support": 40}}
]}))]
pub struct UsageDaily {
    pub month: String,
    pub days: Vec<UsageDay>,
}

/// The `usage` block of `GET /billing/subscription`: the same numbers as `/usage/current`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"sessions": 2, "messages_this_month": 1201, "groups": 0, "labels": 14, "ai_replies_this_month": 40}))]
pub struct SubscriptionUsage {
    pub sessions: u64,
    pub messages_this_month: u64,
    pub groups: u64,
    pub labels: u64,
    pub ai_replies_this_month: u64,
}

/// A gauge that is sent must be a number: `null` is refused rather than read as "not sent".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Number>, D::Error> {
    Number::deserialize(d).map(Some)
}
