//! The audit log: newest first, filtered by action, a page at a time (the API's cursor), and the
//! page shown as CSV (the same `Table`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use moltflow_core::Scope;
use moltflow_types::{AuditEntry, AuditPage};
use serde_json::Value;

use crate::dashboard::csv;
use crate::dashboard::errors::PageResult;
use crate::dashboard::errors::encode;
use crate::dashboard::forms::FormErrors;
use crate::dashboard::kit;
use crate::dashboard::session::Viewer;
use crate::dashboard::table::{Cell, Table};
use crate::extract::QueryParams;
use crate::state::AppState;
use moltflow_app::services::principal::guards::*;

pub const PAGE_SIZE: i64 = 50;

/// The actions offered in the filter (any other text is accepted too, as by the API).
const ACTIONS: &[&str] = &[
    "login.succeeded",
    "login.failed",
    "logout",
    "api_key.created",
    "api_key.rotated",
    "api_key.revoked",
    "settings.updated",
    "consent.recorded",
    "member.invited",
    "member.joined",
    "member.role_changed",
    "member.removed",
    "billing.checkout_started",
    "subscription.cancel_requested",
    "plan.changed",
];

/// `{"a":1,"b":"x"}` → `a=1, b=x`: details as a line a person reads.
fn details(v: &Value) -> String {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn table(entries: &[AuditEntry]) -> Table {
    Table {
        caption: "Audit log entries, newest first".to_owned(),
        header: ["Time", "Action", "Actor", "Target", "IP", "User agent", "Details"].map(str::to_owned).to_vec(),
        rows: entries
            .iter()
            .map(|e| {
                vec![
                    Cell::text(e.at.clone()),
                    Cell::text(e.action.clone()),
                    Cell::text(match &e.actor.id {
                        Some(id) => format!("{} {id}", e.actor.kind),
                        None => e.actor.kind.clone(),
                    }),
                    Cell::text(e.target.clone().unwrap_or_default()),
                    Cell::text(e.ip.clone().unwrap_or_default()),
                    Cell::text(e.user_agent.clone().unwrap_or_default()),
                    Cell::text(details(&e.details)),
                ]
            })
            .collect(),
    }
}

async fn load(state: &AppState, viewer: &Viewer, q: &QueryParams) -> Result<AuditPage, crate::error::ApiError> {
    let action = q.get("action").map(str::trim).filter(|a| !a.is_empty());
    state
        .audit_log()
        .list(&viewer.principal.authorize::<AuditRead>()?, PAGE_SIZE, q.get("cursor"), action)
        .await
        .map_err(crate::error::ApiError::from_query)
}

fn no_audit_access(viewer: &Viewer) -> Response {
    let body = html! { p.muted { "Only owners and admins of your workspace can read the audit log." } };
    kit::page(viewer, "/audit", "Audit log", None, StatusCode::OK, body)
}

/// `GET /audit?action=&cursor=`.
pub async fn page(state: AppState, viewer: Viewer, q: QueryParams) -> PageResult {
    if !viewer.may(Scope::AUDIT_READ) {
        return Ok(no_audit_access(&viewer));
    }
    let action = q.get("action").map(str::trim).unwrap_or("");
    let (page, errors) = match load(&state, &viewer, &q).await {
        Ok(p) => (p, FormErrors::default()),
        Err(err) => (AuditPage { items: Vec::new(), next_cursor: None }, FormErrors::from_error(err)?),
    };
    let filter = if action.is_empty() { String::new() } else { format!("action={}&", encode(action)) };
    let cursor =
        q.get("cursor").filter(|c| !c.is_empty()).map(|c| format!("cursor={}&", encode(c))).unwrap_or_default();
    let csv_href = format!("/audit.csv?{filter}{cursor}").trim_end_matches(['&', '?']).to_owned();
    let body = html! {
        form.inline-form method="get" action="/audit" role="search" aria-label="Filter the audit log" {
            div.field.invalid[errors.field("action").is_some()] {
                label for="f-action" { "Action" }
                select #f-action name="action" {
                    option value="" selected[action.is_empty()] { "Every action" }
                    @for a in ACTIONS { option value=(a) selected[*a == action] { (a) } }
                    @if !action.is_empty() && !ACTIONS.contains(&action) { option value=(action) selected { (action) } }
                }
                @if let Some(m) = errors.field("action") { p.field-error { (m) } }
            }
            button type="submit" { "Filter" }
            @if !action.is_empty() { " " a href="/audit" { "Show every action" } }
        }
        (table(&page.items).render())
        div.actions {
            @if q.get("cursor").is_some_and(|c| !c.is_empty()) { a href=(format!("/audit?{filter}").trim_end_matches(['&', '?'])) { "Newest entries" } }
            @if let Some(next) = &page.next_cursor { a href=(format!("/audit?{filter}cursor={}", encode(next))) { "Older entries" } }
            a href=(csv_href) download { "Download this page as CSV" }
        }
    };
    Ok(kit::page(&viewer, "/audit", "Audit log", None, errors.status(), body))
}

/// `GET /audit.csv?action=&cursor=`: the page the same query shows.
pub async fn csv(state: AppState, viewer: Viewer, q: QueryParams) -> PageResult {
    viewer.principal.require(Scope::AUDIT_READ)?;
    let page = load(&state, &viewer, &q).await?;
    Ok(csv::download("audit-log.csv", &table(&page.items)).into_response())
}
