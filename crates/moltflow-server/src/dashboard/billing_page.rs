//! Billing: the plans compared, monthly or yearly; an upgrade goes through the provider's
//! checkout (the local provider's page included), the billing portal, and canceling at the
//! period's end behind a confirmation page. Members see the plan and the comparison only.
//! (The forms post to `/billing/upgrade`, `/billing/manage` and `/billing/cancel-subscription`:
//! `/billing/checkout`, `/portal` and `/cancel` are the API's own paths at the root.)

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use moltflow_core::Scope;
use moltflow_core::plan::DEFAULT_PLAN;
use moltflow_types::{CheckoutRequest, PlanLimits, PlanView, SubscriptionView};
use serde::Deserialize;

use crate::dashboard::csrf::Signed;
use crate::dashboard::errors::PageResult;
use crate::dashboard::forecast::thousands;
use crate::dashboard::forms::{FormErrors, csrf_field};
use crate::dashboard::kit::{self, when_or};
use crate::dashboard::session::{Client, Viewer};
use crate::extract::QueryParams;
use crate::state::AppState;
use moltflow_app::services::billing;
use moltflow_app::services::principal::guards::*;

#[derive(Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    plan_id: String,
    #[serde(default)]
    billing_cycle: String,
}

fn cycle_of(q: &QueryParams) -> &'static str {
    if q.get("cycle") == Some("yearly") { "yearly" } else { "monthly" }
}

/// `$29.90`; a yearly price also as its monthly share.
fn price(cents: u64) -> String {
    format!("${}.{:02}", thousands(cents / 100), cents % 100)
}

fn limit(v: Option<u64>) -> String {
    v.map_or_else(|| "Unlimited".to_owned(), thousands)
}

fn limit_rows(l: &PlanLimits) -> Markup {
    html! {
        dl.limits {
            dt { "Messages a month" } dd { (limit(l.max_messages_per_month)) }
            dt { "AI replies a month" } dd { (limit(l.ai_replies_per_month)) }
            dt { "WhatsApp sessions" } dd { (limit(l.max_sessions)) }
            dt { "Groups" } dd { (limit(l.max_groups)) }
            dt { "Labels" } dd { (limit(l.max_labels)) }
        }
    }
}

fn plan_card(viewer: &Viewer, plan: &PlanView, sub: &SubscriptionView, cycle: &str) -> Markup {
    let amount = if cycle == "yearly" { plan.prices.yearly.amount_cents } else { plan.prices.monthly.amount_cents };
    let current = plan.plan_id == sub.plan_id && (plan.plan_id == DEFAULT_PLAN || sub.billing_cycle.as_str() == cycle);
    let free = plan.prices.monthly.amount_cents == 0 && plan.prices.yearly.amount_cents == 0;
    let heading = format!("plan-{}", plan.plan_id);
    html! {
        article.plan.current[current] aria-labelledby=(heading) {
            h3 id=(heading) { (plan.display_name) @if current { " " span.badge { "Your plan" } } }
            p.price {
                @if free { "Free" } @else {
                    strong { (price(amount)) } @if cycle == "yearly" { " a year (" (price(amount / 12)) " a month)" } @else { " a month" }
                }
            }
            p.muted { (plan.description) }
            (limit_rows(&plan.limits))
            ul.features { @for f in &plan.features { li { (f) } } }
            @if viewer.may(Scope::BILLING_MANAGE) && !free && !current {
                form method="post" action="/billing/upgrade" {
                    (csrf_field(&viewer.csrf))
                    input type="hidden" name="plan_id" value=(plan.plan_id);
                    input type="hidden" name="billing_cycle" value=(cycle);
                    button type="submit" { "Choose " (plan.display_name) span.visually-hidden { " billed " (cycle) } }
                }
            }
        }
    }
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    cycle: &str,
    errors: &FormErrors,
    flash: Option<&str>,
) -> PageResult {
    let sub = state.billing().subscription(&viewer.principal.authorize::<BillingRead>()?).await?;
    let plans: Vec<PlanView> = state.plans.plans().iter().map(billing::plan_view).collect();
    let manage = viewer.may(Scope::BILLING_MANAGE);
    let paid = sub.plan_id != DEFAULT_PLAN;
    let body = html! {
        (errors.summary())
        section.card aria-labelledby="sub-title" {
            h2 #sub-title { "Your subscription" }
            p { strong { (sub.display_name) } " · " (sub.billing_cycle) " · status " (sub.status.as_str().replace('_', " ")) }
            @if sub.cancel_at_period_end {
                p { "Canceled: the plan ends on " (when_or(sub.current_period_end.as_deref(), "the end of the period")) "." }
            } @else if paid {
                p.muted { "Renews on " (when_or(sub.current_period_end.as_deref(), "the end of the period")) "." }
            }
            @if manage && paid {
                div.actions {
                    form.inline method="post" action="/billing/manage" {
                        (csrf_field(&viewer.csrf))
                        button.secondary type="submit" { "Open the billing portal" }
                    }
                    @if !sub.cancel_at_period_end { a href="/billing/cancel-subscription" { "Cancel the subscription…" } }
                }
            }
            @if !manage { p.muted { "Only an owner of your workspace can change the plan." } }
        }
        section aria-labelledby="plans-title" {
            h2 #plans-title { "Plans" }
            nav.cycle aria-label="Billing cycle" {
                a href="/billing?cycle=monthly" aria-current=[(cycle == "monthly").then_some("page")] { "Monthly" }
                " "
                a href="/billing?cycle=yearly" aria-current=[(cycle == "yearly").then_some("page")] { "Yearly" }
            }
            div.plans { @for plan in &plans { (plan_card(viewer, plan, &sub, cycle)) } }
        }
    };
    Ok(kit::page(viewer, "/billing", "Billing", flash, errors.status(), body))
}

/// `GET /billing?cycle=monthly|yearly`.
pub async fn page(state: AppState, viewer: Viewer, q: QueryParams) -> PageResult {
    render(&state, &viewer, cycle_of(&q), &FormErrors::default(), kit::flash(q.get("flash"))).await
}

/// Sends the browser to the provider: a redirect on this site (the local provider), else a page
/// with a link, because the pages' `form-action 'self'` policy stops a form's redirect elsewhere.
fn go_to(state: &AppState, viewer: &Viewer, url: &str, what: &str) -> Response {
    if url.starts_with(&format!("{}/", state.config.server.public_url)) {
        return Redirect::to(url).into_response();
    }
    let body = html! { p { a.button href=(url) { "Continue to " (what) } } };
    kit::page(viewer, "/billing", "Billing", None, StatusCode::OK, body)
}

/// `POST /billing/upgrade`: opens a checkout and goes there.
pub async fn checkout(
    state: AppState,
    Client(meta): Client,
    Signed { viewer, form }: Signed<CheckoutForm>,
) -> PageResult {
    viewer.principal.require(Scope::BILLING_MANAGE)?;
    let cycle = if form.billing_cycle == "yearly" { "yearly" } else { "monthly" };
    let request = CheckoutRequest {
        plan_id: form.plan_id,
        billing_cycle: form.billing_cycle,
        success_url: None,
        cancel_url: None,
    };
    match state.billing().checkout(&viewer.principal.authorize::<BillingManage>()?, request, &meta).await {
        Ok(c) => Ok(go_to(&state, &viewer, &c.checkout_url, "the payment page")),
        Err(err) => render(&state, &viewer, cycle, &FormErrors::from_error(err)?, None).await,
    }
}

/// `POST /billing/manage`.
pub async fn portal(state: AppState, Signed { viewer, .. }: Signed<Vec<(String, String)>>) -> PageResult {
    viewer.principal.require(Scope::BILLING_MANAGE)?;
    let return_url = format!("{}/billing", state.config.server.public_url);
    match state.billing().portal(&viewer.principal.authorize::<BillingManage>()?, Some(&return_url)).await {
        Ok(p) => Ok(go_to(&state, &viewer, &p.portal_url, "the billing portal")),
        Err(err) => render(&state, &viewer, "monthly", &FormErrors::from_error(err)?, None).await,
    }
}

/// `GET /billing/cancel-subscription`: the confirmation step.
pub async fn cancel_page(state: AppState, viewer: Viewer) -> PageResult {
    viewer.principal.require(Scope::BILLING_MANAGE)?;
    let sub = state.billing().subscription(&viewer.principal.authorize::<BillingRead>()?).await?;
    let question = html! {
        "Cancel the " strong { (sub.display_name) } " plan? It stays until "
        (when_or(sub.current_period_end.as_deref(), "the end of the period"))
        ", then the workspace goes back to the free plan's limits. Nothing is refunded."
    };
    Ok(kit::confirm(
        &viewer,
        kit::Confirm {
            nav: "/billing",
            title: "Cancel the subscription",
            question,
            action: "/billing/cancel-subscription",
            confirm: html! { "Cancel at the end of the period" },
            back: ("/billing", "Keep the plan"),
        },
    ))
}

/// `POST /billing/cancel-subscription`.
pub async fn cancel(
    state: AppState,
    Client(meta): Client,
    Signed { viewer, .. }: Signed<Vec<(String, String)>>,
) -> PageResult {
    match state.billing().cancel(&viewer.principal.authorize::<BillingManage>()?, &meta).await {
        Ok(_) => Ok(Redirect::to("/billing?flash=canceled").into_response()),
        Err(err) => render(&state, &viewer, "monthly", &FormErrors::from_error(err)?, None).await,
    }
}

/// `GET /billing/done?checkout=success|canceled`: where the provider's checkout comes back to.
pub async fn done(q: QueryParams) -> Response {
    let flash = if q.get("checkout") == Some("success") { "checkout_success" } else { "checkout_canceled" };
    Redirect::to(&format!("/billing?flash={flash}")).into_response()
}
