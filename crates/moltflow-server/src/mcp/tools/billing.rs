//! MCP tools about the subscription, the plans, checkout and portal links.

use serde_json::json;

use super::{ApiCall, ToolSpec, body_of, count, get, no_input, object, text};

pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "get_subscription",
        description: "The tenant's current plan, subscription status, billing cycle, period end, plan limits and usage against them.",
        scope: "billing:read",
        read_only: true,
        destructive: false,
        schema: no_input,
        call: |_| Ok(get("/billing/subscription")),
        summary: |s| {
            format!(
                "Plan {} ({}), status {}, period ends {}",
                text(&s["display_name"]),
                text(&s["billing_cycle"]),
                text(&s["status"]),
                text(&s["current_period_end"])
            )
        },
    },
    ToolSpec {
        name: "list_plans",
        description: "Every plan with its monthly and yearly price (in cents, USD) and its limits (null = unlimited).",
        scope: "billing:read",
        read_only: true,
        destructive: false,
        schema: no_input,
        call: |_| Ok(get("/billing/plans")),
        summary: |plans| {
            format!(
                "{} plans: {}",
                count(plans),
                plans
                    .as_array()
                    .map(|p| p.iter().map(|p| text(&p["plan_id"])).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            )
        },
    },
    ToolSpec {
        name: "create_checkout_link",
        description: "A checkout link to upgrade the tenant to a paid plan; a person opens it to pay. `free` or the current plan and cycle is a conflict.",
        scope: "billing:manage",
        read_only: false,
        destructive: false,
        schema: || {
            object(
                json!({
                    "plan_id": {"type": "string", "description": "A plan id from list_plans, e.g. `pro`"},
                    "billing_cycle": {"type": "string", "enum": ["monthly", "yearly"]},
                }),
                &["plan_id", "billing_cycle"],
            )
        },
        call: |args| {
            Ok(ApiCall {
                method: "POST",
                path: "/billing/checkout".into(),
                body: Some(body_of(args, &["plan_id", "billing_cycle"])),
            })
        },
        summary: |r| format!("Checkout link: {}", text(&r["checkout_url"])),
    },
    ToolSpec {
        name: "create_portal_link",
        description: "A link to the billing portal where a person manages invoices and the payment method.",
        scope: "billing:manage",
        read_only: false,
        destructive: false,
        schema: no_input,
        call: |_| Ok(ApiCall { method: "POST", path: "/billing/portal".into(), body: None }),
        summary: |r| format!("Billing portal: {}", text(&r["portal_url"])),
    },
];
