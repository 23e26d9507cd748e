//! The overview (`/` signed in): plan and status, a meter per quota, messages per day this month
//! and "at this pace you reach the limit on <date>" — the startup's question before a campaign.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use moltflow_core::Scope;
use moltflow_core::period::Day;
use moltflow_types::{MetricUsage, SubscriptionView, UsageCurrent};

use crate::dashboard::errors::PageResult;
use crate::dashboard::forecast::{forecast, thousands};
use crate::dashboard::kit::{self, when_or};
use crate::dashboard::session::Viewer;
use crate::dashboard::usage_view;
use crate::state::AppState;
use moltflow_app::services::principal::guards::*;

/// One quota's meter: the label, then `used / limit` in words and as a `<meter>`.
fn meter(id: &str, label: &str, m: &MetricUsage, monthly: bool) -> Markup {
    let period = if monthly { " this month" } else { "" };
    html! {
        div.quota {
            @match m.limit {
                Some(0) => {
                    span.quota-label { (label) }
                    span.quota-value { "Not included in your plan" }
                }
                Some(limit) => {
                    label.quota-label for=(id) { (label) }
                    span.quota-value { (thousands(m.used)) " of " (thousands(limit)) (period) }
                    meter id=(id) min="0" max=(limit) low=((limit * 7 / 10).max(1)) high=((limit * 9 / 10).max(1)) optimum="0" value=(m.used.min(limit)) {
                        (thousands(m.used)) " of " (thousands(limit))
                    }
                }
                None => {
                    span.quota-label { (label) }
                    span.quota-value { (thousands(m.used)) (period) " · unlimited" }
                }
            }
        }
    }
}

fn plan_card(viewer: &Viewer, sub: &SubscriptionView) -> Markup {
    html! {
        section.card aria-labelledby="plan-title" {
            h2 #plan-title { "Plan" }
            p.plan {
                strong { (sub.display_name) } " · " (sub.billing_cycle) " · status " span.status { (sub.status.as_str().replace('_', " ")) }
            }
            @if sub.cancel_at_period_end {
                p { "Canceled: the plan ends on " (when_or(sub.current_period_end.as_deref(), "the end of the period")) "." }
            } @else if sub.current_period_end.is_some() {
                p.muted { "Renews on " (when_or(sub.current_period_end.as_deref(), "")) "." }
            }
            @if viewer.may(Scope::BILLING_MANAGE) { p { a href="/billing" { "Plans and billing" } } }
        }
    }
}

/// `GET /` for a signed-in viewer.
pub async fn page(state: &AppState, viewer: Viewer, flash: Option<&str>) -> PageResult<Response> {
    let reader = viewer.principal.authorize::<UsageRead>()?;
    let current: UsageCurrent = state.usage().current(&reader).await?;
    let sub = state.billing().subscription(&viewer.principal.authorize::<BillingRead>()?).await?;
    let daily = state.usage().daily(&reader, None, None).await?;
    let today = Day::of_ms(state.clock.now_ms());
    let counts: Vec<u64> = daily.days.iter().map(|d| d.messages).collect();
    let outlook = forecast(&counts, current.metrics.messages.limit, today);
    let chart = usage_view::daily_chart(&daily, "overview-daily", false);
    let m = &current.metrics;
    let body = html! {
        (plan_card(&viewer, &sub))
        section.card aria-labelledby="quota-title" {
            h2 #quota-title { "Quotas" }
            div.quotas {
                (meter("q-messages", "Messages", &m.messages, true))
                (meter("q-ai", "AI replies", &m.ai_replies, true))
                (meter("q-sessions", "WhatsApp sessions", &m.sessions, false))
                (meter("q-groups", "Groups", &m.groups, false))
                (meter("q-labels", "Labels", &m.labels, false))
            }
            p.muted { "Monthly counters reset on the 1st (UTC)." }
        }
        section.card aria-labelledby="pace-title" {
            h2 #pace-title { "Messages this month" }
            p.forecast { (outlook.sentence("messages")) }
            @if outlook.suggests_upgrade() {
                @if viewer.may(Scope::BILLING_MANAGE) {
                    p { a.button href="/billing" { "Upgrade your plan" } }
                } @else {
                    p.muted { "An owner of your workspace can upgrade the plan." }
                }
            }
            (chart.render())
            details {
                summary { "The numbers as a table" }
                (chart.table("Date").render())
            }
            p { a href="/usage" { "Usage by day and session" } }
        }
    };
    Ok(kit::page(&viewer, "/", "Overview", flash, StatusCode::OK, body))
}
