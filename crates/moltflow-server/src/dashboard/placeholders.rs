//! The tenant pages' places in the navigation until each gets its page: each renders the layout
//! with its title, so that the navigation works end to end.

use axum::response::{IntoResponse, Response};
use maud::html;

use crate::dashboard::layout;
use crate::dashboard::session::Viewer;
use crate::state::AppState;

fn placeholder(viewer: &Viewer, path: &str, title: &str, flash: Option<&str>) -> Response {
    layout::signed_in(viewer, path, title, flash, html! { p.muted { "This page is being built." } }).into_response()
}

/// The overview (`/` signed in).
pub async fn overview(_state: &AppState, viewer: Viewer, flash: Option<&str>) -> Response {
    placeholder(&viewer, "/", "Overview", flash)
}

pub async fn keys(viewer: Viewer) -> Response {
    placeholder(&viewer, "/keys", "API keys", None)
}

pub async fn usage(viewer: Viewer) -> Response {
    placeholder(&viewer, "/usage", "Usage", None)
}

pub async fn members(viewer: Viewer) -> Response {
    placeholder(&viewer, "/members", "Members", None)
}

pub async fn settings(viewer: Viewer) -> Response {
    placeholder(&viewer, "/settings", "Settings", None)
}

pub async fn billing(viewer: Viewer) -> Response {
    placeholder(&viewer, "/billing", "Billing", None)
}

pub async fn audit(viewer: Viewer) -> Response {
    placeholder(&viewer, "/audit", "Audit log", None)
}
