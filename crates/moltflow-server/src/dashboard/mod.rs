//! The dashboard: server-rendered pages (maud) served at `/` by the same binary, on the same
//! port, over the same use cases as the API (`moltflow_app::services`), with the API's own sessions.
//!
//! Each module has one job: `session` (the cookie and who is signed in), `csrf` (form tokens and
//! the Origin check), `forms` (field errors and form controls), `layout` (the page shell),
//! `assets` (the embedded stylesheet and script), `errors` (pages for what went wrong), `next`
//! (where a page may send a browser that asked to go somewhere); then
//! one module per page group. How to add a page: `docs/dashboard.md`.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;

pub mod account;
pub mod assets;
pub mod audit_page;
pub mod billing_page;
pub mod chart;
pub mod csrf;
pub mod csv;
pub mod docs_page;
pub mod errors;
pub mod forecast;
pub mod forms;
pub mod keys;
pub mod kit;
pub mod layout;
pub mod members_page;
pub mod next;
pub mod overview;
pub mod profile;
pub mod recovery;
pub mod session;
pub mod settings_page;
pub mod table;
pub mod usage_page;
pub mod usage_view;

/// Every dashboard route. Pages answer with the security headers of [`secure_headers`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(account::home))
        .route("/sign-in", get(account::sign_in_page).post(account::sign_in))
        .route("/register", get(account::register_page).post(account::register))
        .route("/sign-out", post(account::sign_out))
        .route("/verify-email", get(account::verify_email_page).post(account::verify_email))
        .route("/verify-email/resend", post(account::resend_verification))
        .route("/accept-invitation", get(account::invitation_page).post(account::accept_invitation))
        .route("/magic-link", get(recovery::magic_link_page).post(recovery::magic_link_sign_in))
        .route("/magic-link/request", post(recovery::request_magic_link))
        .route("/forgot-password", get(recovery::forgot_page).post(recovery::forgot_password))
        .route("/reset-password", get(recovery::reset_page).post(recovery::reset_password))
        .route("/profile", get(profile::page).post(profile::update))
        .route("/profile/password", post(profile::change_password))
        .route("/profile/sign-out-everywhere", post(profile::sign_out_everywhere))
        .route("/profile/delete", get(profile::delete_page).post(profile::delete))
        .route("/keys", get(keys::page).post(keys::create))
        .route("/keys/{id}/rotate", get(keys::rotate_page).post(keys::rotate))
        .route("/keys/{id}/revoke", get(keys::revoke_page).post(keys::revoke))
        .route("/usage", get(usage_page::page))
        .route("/usage/daily.csv", get(usage_page::daily_csv))
        .route("/usage/history.csv", get(usage_page::history_csv))
        .route("/members", get(members_page::page))
        .route("/members/invite", post(members_page::invite))
        .route("/members/invitations/{id}/revoke", post(members_page::revoke_invitation))
        .route("/members/{user_id}/role", post(members_page::change_role))
        .route("/members/{user_id}/remove", get(members_page::remove_page).post(members_page::remove))
        .route("/settings", get(settings_page::page).post(settings_page::save))
        .route("/settings/ai-consent", post(settings_page::consent))
        .route("/billing", get(billing_page::page))
        .route("/billing/upgrade", post(billing_page::checkout))
        .route("/billing/manage", post(billing_page::portal))
        .route("/billing/cancel-subscription", get(billing_page::cancel_page).post(billing_page::cancel))
        .route("/billing/done", get(billing_page::done))
        .route("/audit", get(audit_page::page))
        .route("/audit.csv", get(audit_page::csv))
        .route("/docs", get(docs_page::page))
        .route("/assets/{name}", get(assets::serve))
        .method_not_allowed_fallback(crate::app::method_not_allowed)
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
}

/// The policy of every dashboard answer: nothing from another origin, no inline script or style,
/// no framing, forms post only here; pages are never cached (a page may hold a secret shown once).
/// `Referrer-Policy: same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin:
/// null` with a form POST, which the Origin check must refuse; links to other sites get no referrer
/// either way.
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

async fn secure_headers(response: Response) -> Response {
    with_secure_headers(response)
}

/// `response` with the headers of every dashboard answer (for pages served outside its router).
pub fn with_secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
