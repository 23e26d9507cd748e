//! MCP tools about the subscription, the plans, checkout and portal links.

use moltflow_app::services::principal::ScopeGuard;
use moltflow_app::services::principal::guards::{BillingManage, BillingRead};
use serde_json::json;

use super::{Route, ToolSpec, count, done, no_input, object, text};

pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "get_subscription",
        description: "The tenant's current plan, subscription status, billing cycle, period end, plan limits and usage against them.",
        scope: BillingRead::SCOPE,
        read_only: true,
        destructive: false,
        schema: no_input,
        route: Route::get("/billing/subscription"),
        run: |call| Box::pin(async move { done(call.app.billing().subscription(&call.proof::<BillingRead>()?).await) }),
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
        scope: BillingRead::SCOPE,
        read_only: true,
        destructive: false,
        schema: no_input,
        // The route is public: the plans are no secret.
        route: Route::get("/billing/plans"),
        run: |call| Box::pin(async move { done(Ok(call.app.billing().plans())) }),
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
        scope: BillingManage::SCOPE,
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
        route: Route::post("/billing/checkout").body(&["plan_id", "billing_cycle"]),
        run: |mut call| {
            Box::pin(async move {
                let req = call.body()?;
                done(call.app.billing().checkout(&call.proof::<BillingManage>()?, req, call.origin).await)
            })
        },
        summary: |r| format!("Checkout link: {}", text(&r["checkout_url"])),
    },
    ToolSpec {
        name: "create_portal_link",
        description: "A link to the billing portal where a person manages invoices and the payment method.",
        scope: BillingManage::SCOPE,
        read_only: false,
        destructive: false,
        schema: no_input,
        route: Route::post("/billing/portal"),
        run: |call| {
            Box::pin(async move { done(call.app.billing().portal(&call.proof::<BillingManage>()?, None).await) })
        },
        summary: |r| format!("Billing portal: {}", text(&r["portal_url"])),
    },
];
