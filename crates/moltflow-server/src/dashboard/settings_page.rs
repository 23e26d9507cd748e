//! Settings: the allowed numbers (one per line; each E.164 error is said beside the field with its
//! line, the text kept as typed, nothing saved), approval of outgoing messages, and the AI
//! processing consent with what it records and its history.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use moltflow_core::Scope;
use moltflow_types::{ConsentRecord, TenantSettings, UpdateTenantSettings};
use serde::Deserialize;

use crate::dashboard::csrf::Signed;
use crate::dashboard::errors::PageResult;
use crate::dashboard::forms::{FormErrors, csrf_field};
use crate::dashboard::kit::{self, when};
use crate::dashboard::session::{Client, Viewer};
use crate::extract::QueryParams;
use crate::state::AppState;
use moltflow_app::services::failure::{Failure, Segment};
use moltflow_app::services::principal::guards::*;

#[derive(Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    allowed_numbers: String,
    #[serde(default)]
    require_approval: Option<String>,
    #[serde(default)]
    chat_history_access_enabled: Option<String>,
}

#[derive(Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    granted: String,
}

/// The numbers of the textarea with the line each came from (blank lines skipped; commas and
/// semicolons separate too, for pasted lists).
fn numbers(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .flat_map(|(i, line)| line.split([',', ';']).map(move |n| (i + 1, n.trim().to_owned())))
        .filter(|(_, n)| !n.is_empty())
        .collect()
}

/// The errors of the numbers field: the API's message for each bad number, with its line.
fn number_errors(err: &Failure, lines: &[(usize, String)]) -> Vec<String> {
    let Failure::Invalid(issues) = err else { return Vec::new() };
    issues
        .iter()
        .filter(|i| i.field.head() == Some("allowed_numbers"))
        .map(|i| {
            let index = match i.field.0.get(1) {
                Some(Segment::Index(n)) => Some(*n),
                _ => None,
            };
            match index.and_then(|n| lines.get(n)) {
                Some((line, _)) => format!("Line {line}: {}.", i.message.trim_end_matches('.')),
                None => format!("{}.", i.message.trim_end_matches('.')),
            }
        })
        .collect()
}

struct Shown<'a> {
    numbers_text: String,
    require_approval: bool,
    chat_history: bool,
    number_errors: Vec<String>,
    errors: FormErrors,
    flash: Option<&'a str>,
}

impl Shown<'_> {
    fn stored(s: &TenantSettings) -> Shown<'static> {
        Shown {
            numbers_text: s.allowed_numbers.join("\n"),
            require_approval: s.require_approval,
            chat_history: s.chat_history_access_enabled,
            number_errors: Vec::new(),
            errors: FormErrors::default(),
            flash: None,
        }
    }
}

fn settings_form(viewer: &Viewer, shown: &Shown) -> Markup {
    let invalid = !shown.number_errors.is_empty();
    html! {
        (shown.errors.summary())
        @if invalid { div.alert.error role="alert" { p { "Nothing was saved: correct the numbers marked below." } } }
        form.stack method="post" action="/settings" {
            (csrf_field(&viewer.csrf))
            div.field.invalid[invalid] {
                label for="f-allowed_numbers" { "Allowed numbers" }
                p.hint #f-allowed_numbers-hint { "One per line in E.164: + and 8 to 15 digits, e.g. +5511999999999. Empty: any number." }
                textarea #f-allowed_numbers name="allowed_numbers" rows="6" spellcheck="false" autocomplete="off"
                    aria-invalid=[invalid.then_some("true")]
                    aria-describedby=(if invalid { "f-allowed_numbers-hint f-allowed_numbers-error" } else { "f-allowed_numbers-hint" }) {
                    (shown.numbers_text)
                }
                @if invalid {
                    div.field-error #f-allowed_numbers-error {
                        @for message in &shown.number_errors { p { (message) } }
                    }
                }
            }
            div.choice {
                input #f-require_approval type="checkbox" name="require_approval" value="on" checked[shown.require_approval];
                label for="f-require_approval" { "Require approval before messages are sent" }
            }
            div.choice {
                input #f-chat_history type="checkbox" name="chat_history_access_enabled" value="on" checked[shown.chat_history];
                label for="f-chat_history" { "Let MoltFlow read chat history (for AI replies and reviews)" }
            }
            div.actions { button type="submit" { "Save settings" } }
        }
    }
}

fn settings_read_only(s: &TenantSettings) -> Markup {
    html! {
        (kit::read_only("the settings"))
        dl.facts {
            dt { "Allowed numbers" }
            dd { @if s.allowed_numbers.is_empty() { "Any number" } @else { ul { @for n in &s.allowed_numbers { li { code { (n) } } } } } }
            dt { "Approval before sending" } dd { @if s.require_approval { "Required" } @else { "Not required" } }
            dt { "Chat history access" } dd { @if s.chat_history_access_enabled { "Allowed" } @else { "Not allowed" } }
        }
    }
}

fn consent_section(
    viewer: &Viewer,
    s: &TenantSettings,
    history: Option<&[ConsentRecord]>,
    names: &[(String, String)],
) -> Markup {
    let who = |id: &Option<String>| match id {
        Some(id) => {
            names.iter().find(|(i, _)| i == id).map(|(_, n)| n.clone()).unwrap_or_else(|| "A former member".to_owned())
        }
        None => "—".to_owned(),
    };
    html! {
        section.card aria-labelledby="consent-title" {
            h2 #consent-title { "AI processing consent" }
            p { "AI processing is " strong { @if s.ai_consent_enabled { "allowed" } @else { "not allowed" } } " for this workspace." }
            p.muted { "Each change is recorded for GDPR and never edited or deleted: who made it, when, from which IP address and browser (user agent), and the consent text's version." }
            @if viewer.may(Scope::SETTINGS_MANAGE) {
                form.inline method="post" action="/settings/ai-consent" {
                    (csrf_field(&viewer.csrf))
                    @if s.ai_consent_enabled {
                        input type="hidden" name="granted" value="false";
                        button.secondary type="submit" { "Withdraw consent" }
                    } @else {
                        input type="hidden" name="granted" value="true";
                        button type="submit" { "Give consent to AI processing" }
                    }
                }
            }
            h3 { "History" }
            @match history {
                None => p.muted { "Owners and admins can read the consent history." },
                Some([]) => p { "No consent recorded yet." },
                Some(records) => div.table-wrap tabindex="0" role="region" aria-label="Consent records" { table {
                    caption.visually-hidden { "Consent records, newest first" }
                    thead { tr { th scope="col" { "When" } th scope="col" { "Choice" } th scope="col" { "Who" } th scope="col" { "IP" } th scope="col" { "User agent" } th scope="col" { "Version" } } }
                    tbody { @for r in records { tr {
                        th scope="row" { (when(&r.created_at)) }
                        td { @if r.granted { "Granted" } @else { "Withdrawn" } }
                        td { (who(&r.user_id)) }
                        td { (r.ip.as_deref().unwrap_or("—")) }
                        td.ua { (r.user_agent.as_deref().unwrap_or("—")) }
                        td { (r.version) }
                    } } }
                } },
            }
        }
    }
}

async fn render(state: &AppState, viewer: &Viewer, current: &TenantSettings, shown: Shown<'_>) -> PageResult {
    let history = if viewer.may(Scope::AUDIT_READ) {
        Some(state.settings().consents(&viewer.principal.authorize::<AuditRead>()?, 50).await?)
    } else {
        None
    };
    let names: Vec<(String, String)> = if viewer.may(Scope::MEMBERS_READ) {
        state
            .members()
            .list(&viewer.principal.authorize::<MembersRead>()?)
            .await?
            .into_iter()
            .map(|m| (m.user_id, m.full_name))
            .collect()
    } else {
        Vec::new()
    };
    let status = if shown.number_errors.is_empty() { shown.errors.status() } else { StatusCode::UNPROCESSABLE_ENTITY };
    let body = html! {
        section.card aria-labelledby="numbers-title" {
            h2 #numbers-title { "Messaging" }
            @if viewer.may(Scope::SETTINGS_MANAGE) { (settings_form(viewer, &shown)) } @else { (settings_read_only(current)) }
        }
        (consent_section(viewer, current, history.as_deref(), &names))
    };
    Ok(kit::page(viewer, "/settings", "Settings", shown.flash, status, body))
}

/// `GET /settings`.
pub async fn page(state: AppState, viewer: Viewer, q: QueryParams) -> PageResult {
    let current = state.settings().get(&viewer.principal.authorize::<SettingsRead>()?).await?;
    let shown = Shown { flash: kit::flash(q.get("flash")), ..Shown::stored(&current) };
    render(&state, &viewer, &current, shown).await
}

/// `POST /settings`: the numbers, approval and chat-history access, all or nothing.
pub async fn save(state: AppState, Client(meta): Client, Signed { viewer, form }: Signed<SettingsForm>) -> PageResult {
    viewer.principal.require(Scope::SETTINGS_MANAGE)?;
    let lines = numbers(&form.allowed_numbers);
    let patch = UpdateTenantSettings {
        allowed_numbers: Some(lines.iter().map(|(_, n)| n.clone()).collect()),
        require_approval: Some(form.require_approval.is_some()),
        ai_consent_enabled: None,
        chat_history_access_enabled: Some(form.chat_history_access_enabled.is_some()),
    };
    let err = match state.settings().update(&viewer.principal.authorize::<SettingsManage>()?, patch, &meta).await {
        Ok(_) => return Ok(Redirect::to("/settings?flash=settings_saved").into_response()),
        Err(err) => err,
    };
    let number_errors = number_errors(&err, &lines);
    let errors = if number_errors.is_empty() { FormErrors::from_error(err)? } else { FormErrors::default() };
    let current = state.settings().get(&viewer.principal.authorize::<SettingsRead>()?).await?;
    let shown = Shown {
        numbers_text: form.allowed_numbers,
        require_approval: form.require_approval.is_some(),
        chat_history: form.chat_history_access_enabled.is_some(),
        number_errors,
        errors,
        flash: None,
    };
    render(&state, &viewer, &current, shown).await
}

/// `POST /settings/ai-consent`: grants or withdraws; the use case appends the consent record.
pub async fn consent(
    state: AppState,
    Client(meta): Client,
    Signed { viewer, form }: Signed<ConsentForm>,
) -> PageResult {
    viewer.principal.require(Scope::SETTINGS_MANAGE)?;
    let patch = UpdateTenantSettings {
        allowed_numbers: None,
        require_approval: None,
        ai_consent_enabled: Some(form.granted == "true"),
        chat_history_access_enabled: None,
    };
    state.settings().update(&viewer.principal.authorize::<SettingsManage>()?, patch, &meta).await?;
    Ok(Redirect::to("/settings?flash=consent_recorded").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_line_and_skip_blank_ones() {
        let got = numbers("+5511999999999\n\n  +14155550123 , +4930123456\r\nabc\n");
        let lines: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 3, 3, 4]);
        assert_eq!(got[3].1, "abc");
    }

    #[test]
    fn each_bad_number_is_said_with_its_line() {
        let lines = numbers("+5511999999999\n\n12345");
        let err = Failure::invalid("allowed_numbers", "x", "value_error");
        assert_eq!(number_errors(&err, &lines), ["x."]);
        let err = Failure::invalid(
            "allowed_numbers.1",
            "\"12345\" is not an E.164 number (+ and 8 to 15 digits)",
            "value_error",
        );
        assert_eq!(number_errors(&err, &lines), ["Line 3: \"12345\" is not an E.164 number (+ and 8 to 15 digits)."]);
    }
}
