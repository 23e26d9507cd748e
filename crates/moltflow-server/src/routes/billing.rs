//! `/billing/*` (API.md §6), and the local provider's checkout and portal pages.

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use moltflow_core::clock::real_time_ms;
use moltflow_types::{
    CheckoutRequest, CheckoutResponse, ErrorBody, PlanView, PortalRequest, PortalResponse, SignupCheckoutRequest,
    SignupCheckoutResponse, SubscriptionView, TokenPair, ValidationErrorBody, WebhookAck,
};
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, OptionalJsonBody, Origin, RawBody};
use crate::principal::{BillingManage, BillingRead, Caller};
use crate::routes::ApiRoutes as _;
use crate::routes::throttle;
use crate::state::AppState;
use moltflow_app::billing::{events, signature};
use moltflow_app::services::billing::{EventOutcome, LocalCheckout};
use moltflow_app::services::signup::SignupOutcome;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .api_routes(routes!(list_plans))
        .api_routes(routes!(get_subscription))
        .api_routes(routes!(create_checkout))
        .api_routes(routes!(create_portal))
        .api_routes(routes!(cancel_subscription))
        .api_routes(routes!(signup_checkout))
        .api_routes(routes!(stripe_webhook))
        .api_routes(routes!(local_checkout_page, local_checkout_pay))
        .api_routes(routes!(local_portal_page, local_portal_cancel))
}

/// The plans on offer (public).
#[utoipa::path(get, path = "/billing/plans", tag = "billing", responses((status = 200, body = Vec<PlanView>)))]
async fn list_plans(state: AppState) -> Json<Vec<PlanView>> {
    Json(state.billing().plans())
}

/// The tenant's plan, status, limits and usage.
#[utoipa::path(get, path = "/billing/subscription", tag = "billing", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = SubscriptionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
))]
async fn get_subscription(state: AppState, caller: Caller<BillingRead>) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(state.billing().subscription(&caller).await?))
}

/// Start a checkout for a paid plan (owners, or `billing:manage`).
#[utoipa::path(post, path = "/billing/checkout", tag = "billing", security(("bearer" = []), ("api_key" = [])),
    request_body = CheckoutRequest, responses(
    (status = 200, body = CheckoutResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, description = "Unknown plan (`plan_not_found`)", body = ErrorBody),
    (status = 409, description = "`free_plan`, or `already_on_plan`", body = ErrorBody),
    (status = 422, description = "Bad cycle, or a redirect URL off the allowed origins", body = ValidationErrorBody),
    (status = 502, description = "The provider refused (`billing_provider_error`)", body = ErrorBody),
    (status = 503, description = "The provider is unreachable (`billing_unavailable`)", body = ErrorBody),
))]
async fn create_checkout(
    state: AppState,
    caller: Caller<BillingManage>,
    origin: Origin,
    JsonBody(req): JsonBody<CheckoutRequest>,
) -> ApiResult<Json<CheckoutResponse>> {
    Ok(Json(state.billing().checkout(&caller, req, &origin).await?))
}

/// A billing portal link (owners, or `billing:manage`).
#[utoipa::path(post, path = "/billing/portal", tag = "billing", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Option<PortalRequest>), responses(
    (status = 200, body = PortalResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, description = "Never checked out (`no_billing_customer`)", body = ErrorBody),
    (status = 422, body = ValidationErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
))]
async fn create_portal(
    state: AppState,
    caller: Caller<BillingManage>,
    OptionalJsonBody(req): OptionalJsonBody<PortalRequest>,
) -> ApiResult<Json<PortalResponse>> {
    Ok(Json(state.billing().portal(&caller, req.return_url.as_deref()).await?))
}

/// Cancel at the end of the period; the plan stays until then.
#[utoipa::path(post, path = "/billing/cancel", tag = "billing", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = SubscriptionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, description = "Nothing to cancel (`no_subscription`)", body = ErrorBody),
    (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
))]
async fn cancel_subscription(
    state: AppState,
    caller: Caller<BillingManage>,
    origin: Origin,
) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(state.billing().cancel(&caller, &origin).await?))
}

/// Sign up with a plan: creates the tenant and owner like register; a paid plan answers a
/// checkout, `free` a token pair (public).
#[utoipa::path(post, path = "/billing/signup-checkout", tag = "billing", request_body = SignupCheckoutRequest, responses(
    (status = 201, description = "Paid plan: a checkout for the new tenant; free plan: signed in", body = SignupAnswer),
    (status = 404, body = ErrorBody), (status = 409, description = "`email_taken`", body = ErrorBody),
    (status = 422, body = ValidationErrorBody), (status = 429, body = ErrorBody),
    (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
))]
async fn signup_checkout(
    state: AppState,
    origin: Origin,
    JsonBody(req): JsonBody<SignupCheckoutRequest>,
) -> ApiResult<(StatusCode, Json<SignupAnswer>)> {
    // Sign-ups share register's per-address budget: a flood of new tenants is throttled here,
    // at the edge, before any work.
    throttle(&state.rate_limits.register_ip, &origin, "Too many sign-ups from this address", state.clock.now_ms())
        .await?;
    let answer = match state.signup().signup_checkout(req, &origin).await? {
        SignupOutcome::Tokens(pair) => SignupAnswer::Tokens(pair),
        SignupOutcome::Checkout(c) => SignupAnswer::Checkout(c),
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Stripe events, verified by `Stripe-Signature`; each event id is applied once. Live only when
/// `MOLTFLOW_STRIPE_WEBHOOK_SECRET` is set.
#[utoipa::path(post, path = "/billing/webhook", tag = "billing", request_body(content = Object, content_type = "application/json"), responses(
    (status = 200, body = WebhookAck),
    (status = 400, description = "Missing or bad signature (`invalid_signature`), or not an event (`invalid_event`)", body = ErrorBody),
    (status = 404, description = "No webhook secret configured", body = ErrorBody),
))]
async fn stripe_webhook(state: AppState, headers: HeaderMap, RawBody(body): RawBody) -> ApiResult<Json<WebhookAck>> {
    let Some(secret) = &state.config.billing.stripe_webhook_secret else {
        return Err(ApiError::missing("Webhook endpoint (no MOLTFLOW_STRIPE_WEBHOOK_SECRET configured)"));
    };
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    // Stripe signed with its clock: the tolerance is judged in real time, not the service's.
    signature::verify(header, &body, secret.expose_secret(), real_time_ms() / 1000)
        .map_err(|e| ApiError::bad_request("invalid_signature", format!("Webhook signature rejected: {e}")))?;
    let event = events::parse_stripe(&body)
        .map_err(|e| ApiError::bad_request("invalid_event", format!("Not a Stripe event: {e}")))?;
    let outcome = state.billing().apply_event(&event).await?;
    Ok(Json(WebhookAck { received: true, duplicate: outcome == EventOutcome::Duplicate }))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A page of the local provider, with the dashboard's security headers: it holds a Pay button
/// that grants a plan, so it must not be framed (clickjacking), sniffed or cached. The
/// dashboard's stylesheet, not an inline style, which its policy refuses.
fn page(title: &str, body: &str) -> Response {
    let html = Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <link rel=\"stylesheet\" href=\"{style}\"></head><body class=\"public\"><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title),
        style = crate::dashboard::assets::style_path(),
    ));
    crate::dashboard::with_secure_headers(html.into_response())
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"))
}

/// The local provider's checkout page, with its Pay button.
#[utoipa::path(get, path = "/billing/local/checkout/{session_id}", tag = "billing-local",
    params(("session_id" = String, Path)), responses((status = 200, content_type = "text/html", body = String), (status = 404, body = ErrorBody)))]
async fn local_checkout_page(state: AppState, Path(session_id): Path<String>) -> ApiResult<Response> {
    let billing = state.billing();
    let LocalCheckout { row, plan } = billing.local_checkout(&session_id).await?;
    let price = plan.price(row.billing_cycle);
    if row.completed_at.is_some() {
        return Ok(page("Already paid", "<p>This checkout is complete.</p>"));
    }
    Ok(page(
        &format!("MoltFlow {}", plan.display_name),
        &format!(
            "<p>{} plan, billed {}: <strong>{}.{:02} {}</strong>.</p><p>Local billing provider: no card is charged.</p>\
             <form method=\"post\"><button type=\"submit\">Pay</button></form>",
            escape(&plan.display_name),
            escape(row.billing_cycle.as_str()),
            price.amount_cents / 100,
            price.amount_cents % 100,
            escape(&price.currency.to_uppercase())
        ),
    ))
}

/// Pay: completes the checkout through the same path as a Stripe `checkout.session.completed`.
#[utoipa::path(post, path = "/billing/local/checkout/{session_id}", tag = "billing-local",
    params(("session_id" = String, Path)), responses((status = 200, description = "Paid; HTML, or JSON with `Accept: application/json`"), (status = 404, body = ErrorBody)))]
async fn local_checkout_pay(
    state: AppState,
    headers: HeaderMap,
    Path(session_id): Path<String>,
) -> ApiResult<Response> {
    let billing = state.billing();
    let (row, view) = billing.complete_local_checkout(&session_id).await?;
    if wants_json(&headers) {
        return Ok(Json(view).into_response());
    }
    Ok(page(
        "Payment received",
        &format!("<p>Your tenant is now on the {} plan. You can close this page.</p>", escape(&row.plan_id)),
    ))
}

/// The local provider's billing portal.
#[utoipa::path(get, path = "/billing/local/portal/{token}", tag = "billing-local",
    params(("token" = String, Path)), responses((status = 200, content_type = "text/html", body = String), (status = 404, body = ErrorBody)))]
async fn local_portal_page(state: AppState, Path(token): Path<String>) -> ApiResult<Response> {
    let billing = state.billing();
    let view = billing.local_portal_subscription(&token).await?;
    let action = if view.cancel_at_period_end || view.plan_id == moltflow_core::plan::DEFAULT_PLAN {
        String::new()
    } else {
        "<form method=\"post\"><button type=\"submit\">Cancel at period end</button></form>".to_owned()
    };
    Ok(page(
        "Billing",
        &format!(
            "<p>Plan: <strong>{}</strong> ({}), status {}.</p><p>Renews or ends: {}{}</p>{action}",
            escape(&view.display_name),
            escape(view.billing_cycle.as_str()),
            escape(view.status.as_str()),
            escape(view.current_period_end.as_deref().unwrap_or("-")),
            if view.cancel_at_period_end { " (cancels then)" } else { "" },
        ),
    ))
}

/// Cancel at period end from the local portal.
#[utoipa::path(post, path = "/billing/local/portal/{token}", tag = "billing-local",
    params(("token" = String, Path)), responses((status = 200, description = "Canceled at period end"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn local_portal_cancel(
    state: AppState,
    headers: HeaderMap,
    origin: Origin,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let billing = state.billing();
    let view = billing.cancel_from_local_portal(&token, &origin).await?;
    if wants_json(&headers) {
        return Ok(Json(view).into_response());
    }
    Ok(page("Canceled", "<p>The subscription ends at the end of its period.</p>"))
}

/// What a sign-up with a plan answers: a checkout (paid plan) or a token pair (free plan).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum SignupAnswer {
    Checkout(SignupCheckoutResponse),
    Tokens(TokenPair),
}
