//! MCP tools about usage reports.

use moltflow_app::services::principal::ScopeGuard;
use moltflow_app::services::principal::guards::UsageRead;
use serde_json::json;

use super::{Route, ToolSpec, count, done, metric_line, no_input, object, text};

pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "get_usage_current",
        description: "This month's usage per metric (messages, ai_replies, sessions, groups, labels) against the plan's limits, with what remains.",
        scope: UsageRead::SCOPE,
        read_only: true,
        destructive: false,
        schema: no_input,
        route: Route::get("/usage/current"),
        run: |call| Box::pin(async move { done(call.app.usage().current(&call.proof::<UsageRead>()?).await) }),
        summary: |u| {
            let m = &u["metrics"];
            let parts: Vec<String> = ["messages", "ai_replies", "sessions", "groups", "labels"]
                .iter()
                .map(|k| metric_line(k, &m[k]))
                .collect();
            format!("Plan {}: {}", text(&u["plan_id"]), parts.join(", "))
        },
    },
    ToolSpec {
        name: "get_usage_daily",
        description: "Messages and AI replies per day of a month (every day up to today, zero-filled), with a per-WhatsApp-session breakdown.",
        scope: UsageRead::SCOPE,
        read_only: true,
        destructive: false,
        schema: || {
            object(
                json!({
                    "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$", "description": "`YYYY-MM`; default: this month (UTC)"},
                    "session_id": {"type": "string", "description": "Only this WhatsApp session"},
                }),
                &[],
            )
        },
        route: Route::get("/usage/daily").query(&["month", "session_id"]),
        run: |call| {
            Box::pin(async move {
                let query = call.query();
                let proof = call.proof::<UsageRead>()?;
                done(call.app.usage().daily(&proof, query.get("month"), query.get("session_id")).await)
            })
        },
        summary: |d| {
            let days = d["days"].as_array().cloned().unwrap_or_default();
            let total: u64 = days.iter().map(|day| day["messages"].as_u64().unwrap_or(0)).sum();
            format!("{}: {total} messages over {} day(s)", text(&d["month"]), days.len())
        },
    },
    ToolSpec {
        name: "get_usage_history",
        description: "Messages and AI replies per month, newest first.",
        scope: UsageRead::SCOPE,
        read_only: true,
        destructive: false,
        schema: || {
            object(
                json!({
                    "months": {"type": "integer", "minimum": 1, "maximum": 36, "description": "How many months (default 12)"},
                }),
                &[],
            )
        },
        route: Route::get("/usage/history").query(&["months"]),
        run: |call| {
            Box::pin(async move {
                done(call.app.usage().history(&call.proof::<UsageRead>()?, call.query().get("months")).await)
            })
        },
        summary: |h| match h.as_array().and_then(|m| m.first()) {
            Some(m) => format!(
                "{} month(s); {}: {} messages, {} AI replies",
                count(h),
                text(&m["month"]),
                text(&m["messages"]),
                text(&m["ai_replies"])
            ),
            None => "No months".to_owned(),
        },
    },
];
