//! What the tenant pages share: the page answer with its status, the notices of their
//! redirects, dates as people read them, and the note a read-only viewer sees.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::dashboard::layout;
use crate::dashboard::session::Viewer;

/// Notices after a redirect of the tenant pages, by `?flash=` code; only these texts appear.
const FLASHES: &[(&str, &str)] = &[
    ("key_revoked", "The key is revoked: it stops working on its next request."),
    ("key_shown", "That key's secret was shown once and cannot be shown again. Rotate the key for a new one."),
    ("invited", "The invitation is sent."),
    ("invitation_revoked", "The invitation is revoked; its link no longer works."),
    ("role_changed", "The role is changed."),
    ("member_removed", "The member is removed: their sessions and keys stopped working."),
    ("settings_saved", "The settings are saved."),
    ("consent_recorded", "Your choice is recorded."),
    ("canceled", "The subscription is canceled at the end of the period; the plan stays until then."),
    (
        "checkout_success",
        "Thank you: the payment went through. The new plan applies as soon as the provider confirms it.",
    ),
    ("checkout_canceled", "The checkout was canceled; nothing changed."),
];

/// The notice for a `?flash=` code: ours, or one of the layout's.
pub fn flash(code: Option<&str>) -> Option<&'static str> {
    FLASHES.iter().find(|(c, _)| Some(*c) == code).map(|(_, text)| *text).or_else(|| layout::flash(code))
}

/// A signed-in page answered with `status`.
pub fn page(
    viewer: &Viewer,
    path: &str,
    title: &str,
    flash: Option<&str>,
    status: StatusCode,
    body: Markup,
) -> Response {
    let mut response = layout::signed_in(viewer, path, title, flash, body).into_response();
    *response.status_mut() = status;
    response
}

/// What a destructive action asks before it runs, for people without JavaScript too: the
/// question, one danger button posting to `action` (with the CSRF token) and a way back.
pub struct Confirm<'a> {
    pub nav: &'a str,
    pub title: &'a str,
    pub question: Markup,
    pub action: &'a str,
    pub confirm: Markup,
    pub back: (&'a str, &'a str),
}

pub fn confirm(viewer: &Viewer, c: Confirm<'_>) -> Response {
    let body = html! {
        section.card {
            p { (c.question) }
            form.actions method="post" action=(c.action) {
                (crate::dashboard::forms::csrf_field(&viewer.csrf))
                button.danger type="submit" { (c.confirm) }
                a href=(c.back.0) { (c.back.1) }
            }
        }
    };
    page(viewer, c.nav, c.title, None, StatusCode::OK, body)
}

/// `2026-11-30T13:45:12Z` → `2026-11-30 13:45 UTC` (a `<time>` with the exact value).
pub fn when(rfc3339: &str) -> Markup {
    let shown = match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => rfc3339.to_owned(),
    };
    html! { time datetime=(rfc3339) { (shown) } }
}

/// An optional time, or a dash said as "never".
pub fn when_or(value: Option<&str>, none: &str) -> Markup {
    match value {
        Some(v) => when(v),
        None => html! { span.muted { (none) } },
    }
}

/// What a viewer without the write scope sees instead of the forms.
pub fn read_only(what: &str) -> Markup {
    html! { p.muted.read-only { "You can view " (what) "; an owner or admin of your workspace can change it." } }
}
