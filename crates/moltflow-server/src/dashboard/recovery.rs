//! Signing in without the password: the magic link (request it, then the mailed link's page) and
//! the forgotten password (request a reset mail, then the mailed link's form).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use moltflow_types::ResetPasswordRequest;
use serde::Deserialize;

use crate::dashboard::account::{public_page, signed_in_redirect};
use crate::dashboard::csrf::{PreSession, Public};
use crate::dashboard::errors::PageResult;
use crate::dashboard::forms::{Field, FormErrors, csrf_field};
use crate::dashboard::session::{self, Client};
use crate::extract::QueryParams;
use crate::routes::auth_mail::request_mail_link;
use crate::state::AppState;
use moltflow_app::services::recovery::{ACCEPTED, LinkRequest};

#[derive(Default, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
}

fn mail_sent(pre: &PreSession, what: &str) -> Response {
    let body = html! {
        div.alert.ok role="status" { p { (ACCEPTED) } }
        p { "Open the link in the mail " (what) ". It works once; a newer mail replaces it." }
        p { "No mail after a few minutes? Check the spam folder, or " a href="/sign-in" { "try again" } "." }
    };
    public_page(pre, StatusCode::OK, "Check your mail", None, body)
}

/// `POST /magic-link/request`: mails a sign-in link (the same answer whether the address has an
/// account or not).
pub async fn request_magic_link(
    state: AppState,
    Client(meta): Client,
    Public { form, pre }: Public<EmailForm>,
) -> PageResult {
    match request_mail_link(&state, &meta, &form.email, LinkRequest::MagicLink).await {
        Ok(()) => Ok(mail_sent(&pre, "within 15 minutes")),
        Err(err) => Ok(email_form(
            &pre,
            &form,
            &FormErrors::from_error(err)?,
            "/magic-link/request",
            "Sign in by email",
            "Email me a sign-in link",
        )),
    }
}

fn email_form(
    pre: &PreSession,
    form: &EmailForm,
    errors: &FormErrors,
    action: &str,
    title: &str,
    button: &str,
) -> Response {
    let body = html! {
        (errors.summary())
        form.stack method="post" action=(action) {
            (csrf_field(&pre.token))
            (Field::new("email", "Email").kind("email").value(&form.email).autocomplete("username").required().render(errors))
            div.actions { button type="submit" { (button) } a href="/sign-in" { "Back to sign in" } }
        }
    };
    public_page(pre, errors.status(), title, None, body)
}

#[derive(Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
}

/// `GET /magic-link?token=…`: the mailed link. It shows a button instead of signing in at once, so
/// that a mail scanner following the link neither spends it nor gets the session.
pub async fn magic_link_page(pre: PreSession, q: QueryParams) -> Response {
    let token = q.get("token").unwrap_or("");
    let body = html! {
        p { "Continue to sign in to MoltFlow in this browser." }
        form.stack method="post" action="/magic-link" {
            (csrf_field(&pre.token))
            input type="hidden" name="token" value=(token);
            div.actions { button type="submit" { "Sign in" } }
        }
    };
    public_page(&pre, StatusCode::OK, "Sign in by email", None, body)
}

/// `POST /magic-link`: spends the link's token and signs in.
pub async fn magic_link_sign_in(
    state: AppState,
    Client(meta): Client,
    Public { form, pre }: Public<TokenForm>,
) -> PageResult {
    match state.recovery().verify_magic_link(&form.token, &meta).await {
        Ok(pair) => Ok(signed_in_redirect(session::start(&state, &pair).await?, "/")),
        Err(err) => {
            let errors = FormErrors::from_error(err)?;
            let body = html! {
                (errors.summary())
                p { "This sign-in link was used, replaced by a newer one, or it expired (links last 15 minutes)." }
                p { a href="/sign-in" { "Ask for a new link" } }
            };
            Ok(public_page(&pre, errors.status(), "Sign in by email", None, body))
        }
    }
}

/// `GET /forgot-password`.
pub async fn forgot_page(pre: PreSession) -> Response {
    email_form(
        &pre,
        &EmailForm::default(),
        &FormErrors::default(),
        "/forgot-password",
        "Reset your password",
        "Email me a reset link",
    )
}

/// `POST /forgot-password`: mails a reset link (the same answer whether the address has an
/// account or not).
pub async fn forgot_password(
    state: AppState,
    Client(meta): Client,
    Public { form, pre }: Public<EmailForm>,
) -> PageResult {
    match request_mail_link(&state, &meta, &form.email, LinkRequest::PasswordReset).await {
        Ok(()) => Ok(mail_sent(&pre, "within an hour")),
        Err(err) => Ok(email_form(
            &pre,
            &form,
            &FormErrors::from_error(err)?,
            "/forgot-password",
            "Reset your password",
            "Email me a reset link",
        )),
    }
}

#[derive(Default, Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

fn reset_form(pre: &PreSession, form: &ResetForm, errors: &FormErrors) -> Response {
    let body = html! {
        (errors.summary())
        form.stack method="post" action="/reset-password" {
            (csrf_field(&pre.token))
            input type="hidden" name="token" value=(form.token);
            (Field::new("new_password", "New password").kind("password").autocomplete("new-password").required()
                .hint("At least 8 characters; a passphrase of a few words is best.").render(errors))
            (Field::new("confirm_password", "New password again").kind("password").autocomplete("new-password").required().render(errors))
            div.actions { button type="submit" { "Set the new password" } }
        }
        p.muted { "Every device signed in to this account will be signed out." }
    };
    public_page(pre, errors.status(), "Choose a new password", None, body)
}

/// `GET /reset-password?token=…`: the mailed link's form.
pub async fn reset_page(pre: PreSession, q: QueryParams) -> Response {
    let form = ResetForm { token: q.get("token").unwrap_or("").to_owned(), ..ResetForm::default() };
    reset_form(&pre, &form, &FormErrors::default())
}

/// `POST /reset-password`.
pub async fn reset_password(
    state: AppState,
    Client(meta): Client,
    Public { form, pre }: Public<ResetForm>,
) -> PageResult {
    if form.new_password != form.confirm_password {
        let mut errors = FormErrors::default();
        errors.add("confirm_password", "The two passwords differ.");
        return Ok(reset_form(&pre, &form, &errors));
    }
    let request = ResetPasswordRequest { token: form.token.clone(), new_password: form.new_password.clone() };
    match state.recovery().reset_password(request, &meta).await {
        Ok(()) => Ok(Redirect::to("/sign-in?flash=password_reset").into_response()),
        Err(err) => Ok(reset_form(&pre, &form, &FormErrors::from_error(err)?)),
    }
}
