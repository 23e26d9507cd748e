//! Forms: the one place where a use case's error becomes messages beside the fields they name
//! ([`FormErrors::from_error`]), and the controls that show them (a `<label>` for every control,
//! `aria-invalid` and `aria-describedby` on a field in error, what was typed kept, passwords never
//! echoed).

use axum::http::StatusCode;
use maud::{Markup, html};
use serde_json::Value;

use crate::dashboard::csrf;
use crate::dashboard::errors::{PageError, retry_text};
use crate::error::{ApiError, Detail};

/// Errors of one submitted form: by field name, and those no field names (shown above the form).
#[derive(Debug, Default)]
pub struct FormErrors {
    fields: Vec<(String, String)>,
    general: Vec<String>,
    /// The status to answer the re-rendered form with.
    pub status: Option<StatusCode>,
}

/// Error codes that name a field of the form that sent them, though they are not `422` items.
const CODE_FIELDS: &[(&str, &str)] =
    &[("email_taken", "email"), ("invalid_current_password", "current_password"), ("invalid_email", "email")];

impl FormErrors {
    /// Sorts a use case's error: validation items go beside their field (the last name segment of
    /// `loc` after `body`/`query`, e.g. `["body", "password"]` → `password`, and a list index
    /// after it is kept in the message); a few codes name a field; any other client error (a
    /// wrong password, a used token, a 429 with when to retry) goes above the form. Server
    /// errors are not the user's to fix: they become the error page.
    /// Takes a use case's `Failure` or a legacy `ApiError` alike (both read as the API answers
    /// them, so the fields are the ones the API's `loc` names).
    pub fn from_error(err: impl Into<ApiError>) -> Result<FormErrors, PageError> {
        let err = err.into();
        if err.status.is_server_error() {
            return Err(PageError::Api(err));
        }
        let mut errors = FormErrors { status: Some(err.status), ..FormErrors::default() };
        match &err.detail {
            Detail::Items(items) => {
                for item in items {
                    let mut names = item.loc.iter().skip(1);
                    match names.next().and_then(Value::as_str) {
                        Some(field) => {
                            let index = names.next().and_then(Value::as_u64);
                            let msg = match index {
                                Some(i) => format!("Item {}: {}", i + 1, item.msg),
                                None => item.msg.clone(),
                            };
                            errors.fields.push((field.to_owned(), sentence(&msg)));
                        }
                        None => errors.general.push(sentence(&item.msg)),
                    }
                }
            }
            Detail::Message(message) => {
                let mut message = sentence(message);
                if err.status == StatusCode::TOO_MANY_REQUESTS {
                    message = format!("{message} Try again {}.", retry_text(err.retry_after.unwrap_or(60)));
                }
                match CODE_FIELDS.iter().find(|(code, _)| *code == err.code) {
                    Some((_, field)) => errors.fields.push(((*field).to_owned(), message)),
                    None => errors.general.push(message),
                }
            }
        }
        Ok(errors)
    }

    /// Adds an error beside `field` (a check the page makes itself, e.g. two passwords differ).
    pub fn add(&mut self, field: &str, message: &str) {
        self.fields.push((field.to_owned(), message.to_owned()));
        self.status.get_or_insert(StatusCode::UNPROCESSABLE_ENTITY);
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(f, _)| f == name).map(|(_, m)| m.as_str())
    }

    /// The status of the page that shows these errors (`200` when there are none).
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or(StatusCode::OK)
    }

    /// The errors no field shows, as an alert above the form (rendered first on the page so that
    /// a screen reader announces it).
    pub fn summary(&self) -> Markup {
        html! {
            @if !self.general.is_empty() {
                div.alert.error role="alert" {
                    @for message in &self.general { p { (message) } }
                }
            } @else if !self.fields.is_empty() {
                div.alert.error role="alert" { p { "Please correct the fields marked below." } }
            }
        }
    }
}

fn sentence(message: &str) -> String {
    let mut s = message.trim().to_owned();
    if let Some(first) = s.get(..1) {
        s = first.to_uppercase() + &s[1..];
    }
    if !s.ends_with('.') && !s.ends_with('?') && !s.ends_with('!') {
        s.push('.');
    }
    s
}

/// The hidden CSRF field of a form (see `csrf`).
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(token); }
}

/// One labelled input.
pub struct Field<'a> {
    pub name: &'a str,
    pub label: &'a str,
    /// `text`, `email`, `password`, `number`, …
    pub kind: &'a str,
    /// What was typed (ignored for passwords).
    pub value: &'a str,
    pub autocomplete: &'a str,
    pub required: bool,
    /// A line under the label (format, limits).
    pub hint: Option<&'a str>,
    /// The element id, when two forms of a page have a field of the same name.
    pub id: Option<&'a str>,
}

impl<'a> Field<'a> {
    pub fn new(name: &'a str, label: &'a str) -> Field<'a> {
        Field { name, label, kind: "text", value: "", autocomplete: "off", required: false, hint: None, id: None }
    }
    pub fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        self
    }
    pub fn value(mut self, value: &'a str) -> Self {
        self.value = value;
        self
    }
    pub fn autocomplete(mut self, autocomplete: &'a str) -> Self {
        self.autocomplete = autocomplete;
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }
    pub fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }

    /// The label, the input and, when the field is in error, its message (linked by
    /// `aria-describedby`).
    pub fn render(&self, errors: &FormErrors) -> Markup {
        let id = self.id.map_or_else(|| format!("f-{}", self.name), str::to_owned);
        let error = errors.field(self.name);
        let hint_id = format!("{id}-hint");
        let error_id = format!("{id}-error");
        let described: Vec<&str> =
            [self.hint.map(|_| hint_id.as_str()), error.map(|_| error_id.as_str())].into_iter().flatten().collect();
        let value = if self.kind == "password" { "" } else { self.value };
        html! {
            div.field.invalid[error.is_some()] {
                label for=(id) { (self.label) @if !self.required { " " span.optional { "(optional)" } } }
                @if let Some(hint) = self.hint { p.hint id=(hint_id) { (hint) } }
                input id=(id) name=(self.name) type=(self.kind) value=(value) autocomplete=(self.autocomplete)
                    required[self.required] aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[(!described.is_empty()).then(|| described.join(" "))];
                @if let Some(message) = error { p.field-error id=(error_id) { (message) } }
            }
        }
    }
}
