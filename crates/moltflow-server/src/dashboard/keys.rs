//! API keys (the agency's page): the list, a create form with the presets and a scope picker
//! limited to what the viewer may grant, the secret shown once, rotation with a grace period and
//! revocation behind a confirmation page (no script needed).
//!
//! The secret is only ever in the answer to the POST that made it (`Cache-Control: no-store`, as
//! every dashboard page). Each create or rotate form carries a one-time `nonce`: sending the same
//! form again (a reload, "back" then "resend") changes nothing and shows no secret, it redirects
//! to the list saying the secret was shown once.

use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use moltflow_core::Scope;
use moltflow_core::scope::{CATALOGUE, PRESETS};
use moltflow_core::secret::new_token;
use moltflow_types::{ApiKey, ApiKeyWithSecret, CreateApiKeyRequest, RotateApiKeyRequest};

use crate::dashboard::csrf::Signed;
use crate::dashboard::errors::{PageError, PageResult, encode};
use crate::dashboard::forms::{Field, FormErrors, csrf_field};
use crate::dashboard::kit::{self, when, when_or};
use crate::dashboard::session::{Client, Viewer};
use crate::extract::QueryParams;
use crate::state::AppState;
use moltflow_app::services::api_keys::{KeyFilter, KeyPage, KeyPageRequest};
use moltflow_app::services::failure::Failure;
use moltflow_app::services::principal::guards::*;

/// Form nonces already used, kept a day (longer than anyone keeps a form open).
static SPENT: LazyLock<moka::sync::Cache<String, ()>> = LazyLock::new(|| {
    moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(24 * 3600)).build()
});

/// `true` the first time a nonce is presented (a missing one counts as new: the form always
/// carries one, a hand-made request gets what the API would give it).
fn first_use(nonce: Option<&str>) -> bool {
    match nonce.filter(|n| !n.is_empty()) {
        Some(n) => SPENT.entry(n.chars().take(64).collect()).or_insert(()).is_fresh(),
        None => true,
    }
}

fn shown_once() -> Response {
    Redirect::to("/keys?flash=key_shown").into_response()
}

/// The create form as typed.
#[derive(Default)]
pub struct CreateForm {
    name: String,
    preset: String,
    scopes: Vec<String>,
    expires_in_days: String,
    nonce: Option<String>,
}

impl CreateForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> CreateForm {
        let mut form = CreateForm::default();
        for (k, v) in pairs {
            match k.as_str() {
                "name" => form.name = v,
                "preset" => form.preset = v,
                "scope" if !form.scopes.contains(&v) => form.scopes.push(v),
                "expires_in_days" => form.expires_in_days = v,
                "nonce" => form.nonce = Some(v),
                _ => {}
            }
        }
        form
    }

    /// The request the API would get: the preset's scopes, then the ticked ones.
    fn request(&self, errors: &mut FormErrors) -> CreateApiKeyRequest {
        let mut scopes: Vec<String> = Vec::new();
        if let Some(p) = PRESETS.iter().find(|p| p.name == self.preset) {
            scopes.extend(p.scopes.iter().map(|s| (*s).to_owned()));
        }
        for s in &self.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let days = self.expires_in_days.trim();
        let expires_in_days = if days.is_empty() {
            None
        } else {
            match days.parse::<i64>() {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.add("expires_in_days", "Input should be a whole number of days.");
                    None
                }
            }
        };
        CreateApiKeyRequest { name: self.name.clone(), scopes, expires_in_days }
    }
}

/// Whether the viewer may grant every scope of a preset (presets beyond that are not offered).
fn grantable(viewer: &Viewer, names: &[&str]) -> bool {
    names.iter().all(|n| Scope::parse(n).is_some_and(|s| viewer.principal.scopes.contains(s)))
}

fn state_of(key: &ApiKey) -> &'static str {
    match (&key.revoked_at, key.is_active) {
        (Some(_), _) => "Revoked",
        (None, false) => "Expired",
        (None, true) => "Active",
    }
}

async fn creators(state: &AppState, viewer: &Viewer) -> PageResult<Vec<(String, String)>> {
    if !viewer.may(Scope::MEMBERS_READ) {
        return Ok(Vec::new());
    }
    Ok(state
        .members()
        .list(&viewer.principal.authorize::<MembersRead>()?)
        .await?
        .into_iter()
        .map(|m| (m.user_id, m.full_name))
        .collect())
}

fn list(viewer: &Viewer, keys: &[ApiKey], names: &[(String, String)]) -> Markup {
    let me = &viewer.user().id;
    let name_of = |id: &str| {
        if id == me {
            "You".to_owned()
        } else {
            names.iter().find(|(i, _)| i == id).map(|(_, n)| n.clone()).unwrap_or_else(|| "A former member".to_owned())
        }
    };
    html! {
        @if keys.is_empty() {
            p { "No keys yet. Create one below to call the API or connect an agent." }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-label="API keys" {
                table.keys {
                    caption.visually-hidden { "API keys" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Prefix" } th scope="col" { "Scopes" }
                        th scope="col" { "Created by" } th scope="col" { "Last used" } th scope="col" { "Expires" }
                        th scope="col" { "State" } th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for key in keys {
                            tr {
                                th scope="row" { (key.name) }
                                td { code { (key.key_prefix) "…" } }
                                td.scopes { (key.scopes.join(", ")) }
                                td { (name_of(&key.created_by)) " · " (when(&key.created_at)) }
                                td { (when_or(key.last_used_at.as_deref(), "Never")) }
                                td { (when_or(key.expires_at.as_deref(), "Never")) }
                                td { span class=(format!("state {}", state_of(key).to_lowercase())) { (state_of(key)) } }
                                td.key-actions {
                                    @if key.is_active && key.created_by == *me {
                                        a href=(format!("/keys/{}/rotate", key.id)) { "Rotate" span.visually-hidden { " " (key.name) } "…" }
                                        " "
                                    }
                                    @if key.revoked_at.is_none() {
                                        a href=(format!("/keys/{}/revoke", key.id)) { "Revoke" span.visually-hidden { " " (key.name) } "…" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn create_form(viewer: &Viewer, form: &CreateForm, errors: &FormErrors) -> Markup {
    let scope_error = errors.field("scopes");
    html! {
        (errors.summary())
        form.stack method="post" action="/keys" {
            (csrf_field(&viewer.csrf))
            input type="hidden" name="nonce" value=(new_token());
            (Field::new("name", "Name").value(&form.name).required().hint("What uses the key, e.g. outreach-bot.").render(errors))
            fieldset {
                legend { "Preset" }
                p.hint { "A preset grants its scopes; tick more below if needed." }
                div.choice {
                    input #preset-none type="radio" name="preset" value="" checked[form.preset.is_empty()];
                    label for="preset-none" { "None: only the scopes ticked below" }
                }
                @for p in PRESETS.iter().filter(|p| grantable(viewer, p.scopes)) {
                    div.choice {
                        input id=(format!("preset-{}", p.name)) type="radio" name="preset" value=(p.name) checked[form.preset == p.name];
                        label for=(format!("preset-{}", p.name)) { strong { (p.name) } ": " (p.description) }
                    }
                }
            }
            fieldset.scopes.invalid[scope_error.is_some()] aria-describedby=[scope_error.map(|_| "f-scopes-error")] {
                legend { "Scopes" }
                p.hint { "Only the scopes your role holds are offered." }
                div.scope-grid {
                    @for info in CATALOGUE.iter().filter(|i| grantable(viewer, &[i.name])) {
                        @let id = format!("scope-{}", info.name.replace(':', "-"));
                        div.choice {
                            input id=(id) type="checkbox" name="scope" value=(info.name) checked[form.scopes.iter().any(|s| s == info.name)];
                            label for=(id) { code { (info.name) } " " span.muted { (info.description) } }
                        }
                    }
                }
                @if let Some(message) = scope_error { p.field-error #f-scopes-error { (message) } }
            }
            (Field::new("expires_in_days", "Expires after (days)").kind("number").value(&form.expires_in_days)
                .hint("1 to 3650; leave empty for a key that never expires.").render(errors))
            div.actions { button type="submit" { "Create key" } }
        }
    }
}

/// Keys shown per page: an agency may hold thousands.
pub const PAGE_SIZE: i64 = 50;

/// The list's filter and position, from the query string.
#[derive(Default)]
struct Listing {
    search: String,
    /// Any other value of `state` lists every key, as the `<select>`'s first option does.
    state: KeyFilter,
    cursor: String,
}

impl Listing {
    fn from_query(q: &QueryParams) -> Listing {
        let get = |name: &str| q.get(name).map(str::to_owned).unwrap_or_default();
        let state = match q.get("state") {
            Some("active") => KeyFilter::Active,
            Some("inactive") => KeyFilter::Inactive,
            _ => KeyFilter::All,
        };
        Listing { search: get("search"), state, cursor: get("cursor") }
    }

    /// The state as the filter's `<select>` names it ("" for every state).
    fn state_value(&self) -> &'static str {
        match self.state {
            KeyFilter::All => "",
            KeyFilter::Active => "active",
            KeyFilter::Inactive => "inactive",
        }
    }

    fn is_filtered(&self) -> bool {
        !self.search.trim().is_empty() || self.state != KeyFilter::All
    }

    /// `/keys?search=…&state=…` with the filter kept, then `cursor` when given.
    fn href(&self, cursor: Option<&str>) -> String {
        let mut parts = Vec::new();
        if !self.search.trim().is_empty() {
            parts.push(format!("search={}", encode(self.search.trim())));
        }
        if self.state != KeyFilter::All {
            parts.push(format!("state={}", self.state_value()));
        }
        if let Some(c) = cursor {
            parts.push(format!("cursor={}", encode(c)));
        }
        if parts.is_empty() { "/keys".to_owned() } else { format!("/keys?{}", parts.join("&")) }
    }
}

const STATES: &[(&str, &str)] = &[("", "Every state"), ("active", "Active"), ("inactive", "Revoked or expired")];

fn filter_form(listing: &Listing, errors: &FormErrors) -> Markup {
    let search_error = errors.field("search");
    html! {
        form.inline-form method="get" action="/keys" role="search" aria-label="Filter the keys" {
            div.field.invalid[search_error.is_some()] {
                label for="f-search" { "Name or prefix" }
                input #f-search type="search" name="search" value=(listing.search) maxlength="100"
                    aria-describedby=[search_error.map(|_| "f-search-error")];
                @if let Some(m) = search_error { p.field-error #f-search-error { (m) } }
            }
            div.field {
                label for="f-state" { "State" }
                select #f-state name="state" {
                    @for (value, label) in STATES { option value=(value) selected[*value == listing.state_value()] { (label) } }
                }
            }
            button type="submit" { "Filter" }
            @if listing.is_filtered() { " " a href="/keys" { "Show every key" } }
        }
        @if let Some(m) = errors.field("cursor") {
            div.alert.error role="alert" { p { (m) ". " a href=(listing.href(None)) { "Start from the newest keys" } } }
        }
    }
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    listing: &Listing,
    form: &CreateForm,
    errors: &FormErrors,
    flash: Option<&str>,
) -> PageResult {
    let request = KeyPageRequest {
        search: Some(listing.search.as_str()),
        state: listing.state,
        cursor: Some(listing.cursor.as_str()),
        limit: PAGE_SIZE,
    };
    let (page, list_errors) =
        match state.api_keys().page(&viewer.principal.authorize::<AccountManage>()?, request).await {
            Ok(page) => (page, FormErrors::default()),
            Err(err) => (KeyPage { items: Vec::new(), next_cursor: None }, FormErrors::from_error(err)?),
        };
    let names = creators(state, viewer).await?;
    let on_later_page = !listing.cursor.trim().is_empty();
    let body = html! {
        section.card aria-labelledby="keys-title" {
            h2 #keys-title { @if viewer.may(Scope::MEMBERS_MANAGE) { "Your workspace's keys" } @else { "Your keys" } }
            (filter_form(listing, &list_errors))
            @if page.items.is_empty() && (listing.is_filtered() || on_later_page) {
                p { "No key matches." }
            } @else {
                (list(viewer, &page.items, &names))
            }
            @if on_later_page || page.next_cursor.is_some() {
                nav.actions aria-label="Pages of keys" {
                    @if on_later_page { a href=(listing.href(None)) { "Newest keys" } }
                    @if let Some(next) = &page.next_cursor { a href=(listing.href(Some(next))) { "Older keys" } }
                }
            }
        }
        section.card aria-labelledby="create-title" {
            h2 #create-title { "Create a key" }
            (create_form(viewer, form, errors))
        }
    };
    let status = if errors.is_empty() { list_errors.status() } else { errors.status() };
    Ok(kit::page(viewer, "/keys", "API keys", flash, status, body))
}

fn no_key_access(viewer: &Viewer) -> Response {
    kit::page(viewer, "/keys", "API keys", None, StatusCode::OK, kit::read_only("nothing here"))
}

/// `GET /keys`.
pub async fn page(state: AppState, viewer: Viewer, q: QueryParams) -> PageResult {
    if !viewer.may(Scope::ACCOUNT_MANAGE) {
        return Ok(no_key_access(&viewer));
    }
    let listing = Listing::from_query(&q);
    render(&state, &viewer, &listing, &CreateForm::default(), &FormErrors::default(), kit::flash(q.get("flash"))).await
}

/// The one page that shows a secret.
fn secret_page(viewer: &Viewer, made: &ApiKeyWithSecret, rotated: bool) -> Response {
    let body = html! {
        div.alert.warn role="alert" {
            p { strong { "Copy this secret now: it is shown only this once." } }
            p { "MoltFlow keeps only a fingerprint of it. Reloading this page or coming back to it will not show it again; if you lose it, rotate or revoke the key." }
        }
        section.card aria-labelledby="secret-title" {
            h2 #secret-title { "Secret of " (made.key.name) }
            p.secret { code #secret { (made.raw_key) } }
            div.actions {
                button.secondary type="button" data-copy="secret" hidden { "Copy the secret" }
                a href="/keys" { "I have stored it: back to the keys" }
            }
            p.muted {
                "Send it as " code { "X-API-Key: " (made.key.key_prefix) "…" } " or " code { "Authorization: Bearer " (made.key.key_prefix) "…" } "."
                " Scopes: " (made.key.scopes.join(", ")) "."
            }
            @if rotated { p.muted { "The previous secret stops working at the end of the grace period you chose." } }
        }
    };
    let title = if rotated { "Key rotated" } else { "Key created" };
    kit::page(viewer, "/keys", title, None, StatusCode::OK, body)
}

/// `POST /keys`: create; the answer is the secret page.
pub async fn create(
    state: AppState,
    Client(meta): Client,
    Signed { viewer, form }: Signed<Vec<(String, String)>>,
) -> PageResult {
    viewer.principal.require(Scope::ACCOUNT_MANAGE)?;
    let form = CreateForm::from_pairs(form);
    let mut errors = FormErrors::default();
    let request = form.request(&mut errors);
    if errors.is_empty() {
        if !first_use(form.nonce.as_deref()) {
            return Ok(shown_once());
        }
        match state.api_keys().create(&viewer.principal.authorize::<AccountManage>()?, request, &meta).await {
            Ok(made) => return Ok(secret_page(&viewer, &made, false)),
            Err(err) => {
                if let Some(n) = &form.nonce {
                    SPENT.invalidate(n.as_str());
                }
                errors = FormErrors::from_error(err)?;
            }
        }
    }
    render(&state, &viewer, &Listing::default(), &form, &errors, None).await
}

async fn visible_key(state: &AppState, viewer: &Viewer, id: &str) -> PageResult<ApiKey> {
    Ok(state.api_keys().get(&viewer.principal.authorize::<AccountManage>()?, id).await?)
}

/// `GET /keys/{id}/revoke`: the confirmation step.
pub async fn revoke_page(state: AppState, viewer: Viewer, Path(id): Path<String>) -> PageResult {
    viewer.principal.require(Scope::ACCOUNT_MANAGE)?;
    let key = visible_key(&state, &viewer, &id).await?;
    let question = html! {
        "Revoke " strong { (key.name) } " (" code { (key.key_prefix) "…" } ")? Every program using it is refused from its next request. This cannot be undone."
    };
    let action = format!("/keys/{}/revoke", key.id);
    Ok(kit::confirm(
        &viewer,
        kit::Confirm {
            nav: "/keys",
            title: "Revoke a key",
            question,
            action: &action,
            confirm: html! { "Revoke the key" },
            back: ("/keys", "Keep it"),
        },
    ))
}

/// `POST /keys/{id}/revoke`.
pub async fn revoke(
    state: AppState,
    Client(meta): Client,
    Path(id): Path<String>,
    Signed { viewer, .. }: Signed<Vec<(String, String)>>,
) -> PageResult {
    viewer.principal.require(Scope::ACCOUNT_MANAGE)?;
    state.api_keys().revoke(&viewer.principal.authorize::<AccountManage>()?, &id, &meta).await?;
    Ok(Redirect::to("/keys?flash=key_revoked").into_response())
}

/// Grace periods offered, in minutes (the API takes any of 0..=1440).
const GRACES: &[(i64, &str)] =
    &[(0, "None: the old secret stops now"), (15, "15 minutes"), (60, "1 hour"), (1440, "24 hours")];

/// `GET /keys/{id}/rotate`: pick the grace period.
pub async fn rotate_page(state: AppState, viewer: Viewer, Path(id): Path<String>) -> PageResult {
    viewer.principal.require(Scope::ACCOUNT_MANAGE)?;
    let key = visible_key(&state, &viewer, &id).await?;
    if key.created_by != viewer.user().id {
        return Err(PageError::from(Failure::forbidden(
            "not_key_owner",
            "Only the key's creator can rotate it; you may revoke it instead",
        )));
    }
    let body = html! {
        section.card {
            p { "Rotating " strong { (key.name) } " gives it a new secret; its name and scopes stay." }
            form.stack method="post" action=(format!("/keys/{}/rotate", key.id)) {
                (csrf_field(&viewer.csrf))
                input type="hidden" name="nonce" value=(new_token());
                div.field {
                    label for="f-grace" { "How long the old secret keeps working" }
                    select #f-grace name="grace_period_minutes" {
                        @for (minutes, label) in GRACES { option value=(minutes) selected[*minutes == 60] { (label) } }
                    }
                }
                div.actions { button type="submit" { "Rotate the key" } a href="/keys" { "Cancel" } }
            }
        }
    };
    Ok(kit::page(&viewer, "/keys", "Rotate a key", None, StatusCode::OK, body))
}

/// `POST /keys/{id}/rotate`: the answer is the secret page.
pub async fn rotate(
    state: AppState,
    Client(meta): Client,
    Path(id): Path<String>,
    Signed { viewer, form }: Signed<Vec<(String, String)>>,
) -> PageResult {
    viewer.principal.require(Scope::ACCOUNT_MANAGE)?;
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let grace = get("grace_period_minutes").and_then(|g| g.trim().parse::<i64>().ok()).unwrap_or(0);
    if !first_use(get("nonce")) {
        return Ok(shown_once());
    }
    let made = state
        .api_keys()
        .rotate(
            &viewer.principal.authorize::<AccountManage>()?,
            &id,
            RotateApiKeyRequest { grace_period_minutes: Some(grace) },
            &meta,
        )
        .await?;
    Ok(secret_page(&viewer, &made, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_good_once() {
        let n = new_token();
        assert!(first_use(Some(&n)));
        assert!(!first_use(Some(&n)));
        assert!(first_use(None));
    }

    #[test]
    fn the_request_is_the_preset_then_the_ticked_scopes_without_duplicates() {
        let form = CreateForm::from_pairs(vec![
            ("name".into(), "bot".into()),
            ("preset".into(), "messaging".into()),
            ("scope".into(), "messages:send".into()),
            ("scope".into(), "audit:read".into()),
            ("expires_in_days".into(), " 30 ".into()),
        ]);
        let mut errors = FormErrors::default();
        let req = form.request(&mut errors);
        assert!(errors.is_empty());
        assert_eq!(req.expires_in_days, Some(30));
        assert_eq!(req.scopes.iter().filter(|s| *s == "messages:send").count(), 1);
        assert_eq!(req.scopes.last().map(String::as_str), Some("audit:read"));
        let bad = CreateForm { expires_in_days: "soon".into(), ..CreateForm::default() };
        bad.request(&mut errors);
        assert!(errors.field("expires_in_days").is_some());
    }
}
