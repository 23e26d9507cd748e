//! Getting in: `/` (the overview when signed in, the sign-in page otherwise), sign in, register,
//! sign out, the email verification link and its "resend", and the invitation link.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use moltflow_types::{AcceptInvitationRequest, LoginRequest, RegisterRequest};
use serde::Deserialize;

use crate::dashboard::csrf::{PreSession, Public, Signed};
use crate::dashboard::errors::PageResult;
use crate::dashboard::forms::{Field, FormErrors, csrf_field};
use crate::dashboard::next::{safe_next, safe_next_with};
use crate::dashboard::session::{self, Client, MaybeViewer};
use crate::dashboard::{kit, layout, overview};
use crate::error::ApiError;
use crate::extract::QueryParams;
use crate::routes::throttle;
use crate::state::AppState;

/// A signed-out page, with the pre-session CSRF cookie when the browser has none yet.
pub fn public_page(pre: &PreSession, status: StatusCode, title: &str, flash: Option<&str>, body: Markup) -> Response {
    let mut response = (status, layout::public(title, flash, body)).into_response();
    if let Some(cookie) = &pre.set_cookie {
        response.headers_mut().append(session::SET, cookie.clone());
    }
    response
}

/// Goes to `to` with the session cookie just opened.
pub fn signed_in_redirect(cookie: axum::http::HeaderValue, to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(session::SET, cookie);
    response
}

/// `GET /`: the overview for a signed-in viewer, the sign-in page for anyone else.
pub async fn home(state: AppState, MaybeViewer(viewer): MaybeViewer, pre: PreSession, q: QueryParams) -> Response {
    match viewer {
        Some(viewer) => {
            overview::page(&state, viewer, kit::flash(q.get("flash"))).await.unwrap_or_else(IntoResponse::into_response)
        }
        None => sign_in_form(&pre, &SignInForm::default(), &FormErrors::default(), None, layout::flash(q.get("flash"))),
    }
}

#[derive(Default, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

fn sign_in_form(
    pre: &PreSession,
    form: &SignInForm,
    errors: &FormErrors,
    next: Option<&str>,
    flash: Option<&str>,
) -> Response {
    let next = safe_next(next.or(form.next.as_deref()));
    let body = html! {
        (errors.summary())
        form.stack method="post" action="/sign-in" {
            (csrf_field(&pre.token))
            input type="hidden" name="next" value=(next);
            (Field::new("email", "Email").kind("email").value(&form.email).autocomplete("username").required().render(errors))
            (Field::new("password", "Password").kind("password").autocomplete("current-password").required().render(errors))
            div.actions {
                button type="submit" { "Sign in" }
                a href="/forgot-password" { "Forgot your password?" }
            }
        }
        section.card aria-labelledby="magic-title" {
            h2 #magic-title { "Sign in without a password" }
            p { "We mail you a link that signs you in (valid 15 minutes)." }
            form.stack method="post" action="/magic-link/request" {
                (csrf_field(&pre.token))
                (Field::new("email", "Email for the link").id("f-magic-email").kind("email").value(&form.email).autocomplete("username").required().render(&FormErrors::default()))
                div { button.secondary type="submit" { "Email me a sign-in link" } }
            }
        }
        p { "New here? " a href="/register" { "Create a workspace" } "." }
        section aria-labelledby="api-title" {
            h2 #api-title { "Using the API?" }
            p {
                "Everything here is also an HTTP API under " code { "/api/v2" } ": read "
                a href="/docs" { "the API and agent guide" } " or import " a href="/openapi.json" { code { "/openapi.json" } } ". "
                "AI agents connect to " code { "/mcp" } " with an API key; the same binary is a command-line client ("
                code { "moltflow login" } ", " code { "moltflow keys" } ", …)."
            }
        }
    };
    public_page(pre, errors.status(), "Sign in", flash, body)
}

/// `GET /sign-in`.
pub async fn sign_in_page(MaybeViewer(viewer): MaybeViewer, pre: PreSession, q: QueryParams) -> Response {
    if viewer.is_some() {
        return Redirect::to(&safe_next(q.get("next"))).into_response();
    }
    sign_in_form(&pre, &SignInForm::default(), &FormErrors::default(), q.get("next"), layout::flash(q.get("flash")))
}

/// `POST /sign-in`: the API's password login (same throttles, lockout, audit and session).
pub async fn sign_in(state: AppState, Client(meta): Client, Public { form, pre }: Public<SignInForm>) -> PageResult {
    let request = LoginRequest { email: form.email.clone(), password: form.password.clone() };
    let attempt = match throttle(
        &state.rate_limits.login_ip,
        &meta,
        "Too many login attempts from this address",
        state.clock.now_ms(),
    )
    .await
    {
        Ok(()) => state.auth().login(request, &meta).await.map_err(ApiError::from),
        Err(refused) => Err(refused),
    };
    match attempt {
        Ok(pair) => {
            let cookie = session::start(&state, &pair).await?;
            Ok(signed_in_redirect(cookie, &safe_next(form.next.as_deref())))
        }
        Err(err) => Ok(sign_in_form(&pre, &form, &FormErrors::from_error(err)?, None, None)),
    }
}

#[derive(Default, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    tenant_name: String,
    #[serde(default)]
    password: String,
}

fn register_form(pre: &PreSession, form: &RegisterForm, errors: &FormErrors) -> Response {
    let body = html! {
        (errors.summary())
        form.stack method="post" action="/register" {
            (csrf_field(&pre.token))
            (Field::new("full_name", "Your name").value(&form.full_name).autocomplete("name").required().render(errors))
            (Field::new("email", "Email").kind("email").value(&form.email).autocomplete("email").required().render(errors))
            (Field::new("tenant_name", "Workspace name").value(&form.tenant_name).autocomplete("organization")
                .hint("Your company or team; your name if left empty.").render(errors))
            (Field::new("password", "Password").kind("password").autocomplete("new-password").required()
                .hint("At least 8 characters; a passphrase of a few words is best.").render(errors))
            div.actions { button type="submit" { "Create workspace" } }
        }
        p { "Already have an account? " a href="/sign-in" { "Sign in" } "." }
    };
    public_page(pre, errors.status(), "Create your workspace", None, body)
}

/// `GET /register`.
pub async fn register_page(MaybeViewer(viewer): MaybeViewer, pre: PreSession) -> Response {
    if viewer.is_some() {
        return Redirect::to("/").into_response();
    }
    register_form(&pre, &RegisterForm::default(), &FormErrors::default())
}

/// `POST /register`: the API's registration; signs the new owner in.
pub async fn register(state: AppState, Client(meta): Client, Public { form, pre }: Public<RegisterForm>) -> PageResult {
    let tenant_name = Some(form.tenant_name.trim()).filter(|t| !t.is_empty()).map(str::to_owned);
    let request = RegisterRequest {
        email: form.email.clone(),
        password: Some(form.password.clone()),
        full_name: form.full_name.clone(),
        tenant_name,
    };
    let attempt = match throttle(
        &state.rate_limits.register_ip,
        &meta,
        "Too many sign-ups from this address",
        state.clock.now_ms(),
    )
    .await
    {
        Ok(()) => state.auth().register(request, &meta).await.map_err(ApiError::from),
        Err(refused) => Err(refused),
    };
    match attempt {
        Ok(pair) => {
            let cookie = session::start(&state, &pair).await?;
            Ok(signed_in_redirect(cookie, "/?flash=registered"))
        }
        Err(err) => Ok(register_form(&pre, &form, &FormErrors::from_error(err)?)),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

/// `POST /sign-out`: ends this session, for the API too.
pub async fn sign_out(state: AppState, Client(meta): Client, Signed { viewer, .. }: Signed<Empty>) -> PageResult {
    state.sessions().logout(&viewer.principal.user_session()?, false, &meta).await?;
    session::forget(&state, &viewer).await?;
    let mut response = Redirect::to("/sign-in?flash=signed_out").into_response();
    response.headers_mut().append(session::SET, session::clear(&state));
    Ok(response)
}

/// `GET /verify-email?token=…`: the link of the verification mail. It only shows a "Confirm my
/// address" button: a mail scanner that fetches the link proves nothing, and the first proof of a
/// mailbox takes back what was set up before it (API.md §3), which only the person should trigger.
pub async fn verify_email_page(state: AppState, pre: PreSession, q: QueryParams) -> PageResult {
    let token = q.get("token").unwrap_or("");
    match state.verification().inspect(token).await {
        Ok(link) => {
            let body = html! {
                p { "Confirm that " strong { (link.email) } " is your address." }
                @if !link.already_verified {
                    p {
                        "This is the first proof that the mailbox is yours, so anything set up in the account "
                        "before it is removed: the password, API keys, pending invitations and every signed-in "
                        "session. Nobody who registered your address before you keeps access. You then sign in "
                        "with an emailed link and choose a new password."
                    }
                }
                form.stack method="post" action="/verify-email" {
                    (csrf_field(&pre.token))
                    input type="hidden" name="token" value=(token);
                    div.actions { button type="submit" { "Confirm my address" } }
                }
            };
            Ok(public_page(&pre, StatusCode::OK, "Confirm your email address", None, body))
        }
        Err(err) => Ok(link_refused(&pre, FormErrors::from_error(err)?, false)),
    }
}

/// The page of a verification link that is not valid (used, replaced or expired).
fn link_refused(pre: &PreSession, errors: FormErrors, signed_in: bool) -> Response {
    let body = html! {
        (errors.summary())
        p { "This link is not valid any more: it was used, replaced by a newer one, or it expired." }
        @if signed_in { p { "Use the " strong { "Resend the link" } " button on the " a href="/" { "dashboard" } " to get a new one." } }
        @else { p { a href="/sign-in" { "Sign in" } " and ask for a new link from the dashboard." } }
    };
    public_page(pre, errors.status(), "Verify your email", None, body)
}

#[derive(Default, Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    token: String,
}

/// `POST /verify-email`: the button of the link's page; verifies the address. A first proof ends
/// every session (this browser's too) and removes the password, so the answer says what was
/// removed and offers the sign-in link that is now the way in.
pub async fn verify_email(
    state: AppState,
    Client(meta): Client,
    MaybeViewer(viewer): MaybeViewer,
    Public { form, pre }: Public<VerifyForm>,
) -> PageResult {
    let email = state.verification().inspect(&form.token).await.ok().map(|link| link.email);
    match state.verification().verify_email(&form.token, &meta).await {
        Ok(None) if viewer.is_some() => Ok(Redirect::to("/?flash=verified").into_response()),
        Ok(None) => {
            let body = html! { p { a href="/sign-in" { "Sign in" } " to continue." } };
            Ok(public_page(&pre, StatusCode::OK, "Email verified", layout::flash(Some("verified")), body))
        }
        Ok(Some(taken)) => {
            let lines = taken.lines();
            let body = html! {
                div.alert.ok role="status" { p { "Your address is confirmed." } }
                @if lines.is_empty() {
                    p { "The account had nothing set up before this proof." }
                } @else {
                    p { "Everything set up in the account before this first proof of your mailbox was removed:" }
                    ul { @for line in &lines { li { (line) } } }
                }
                p { "Sign in with a link we email you, then choose a password in your profile." }
                @if let Some(email) = &email {
                    form.stack method="post" action="/magic-link/request" {
                        (csrf_field(&pre.token))
                        input type="hidden" name="email" value=(email);
                        div.actions { button type="submit" { "Email me a sign-in link" } }
                    }
                }
            };
            let mut response = public_page(&pre, StatusCode::OK, "Email verified", None, body);
            if let Some(viewer) = &viewer {
                // Its session ended with the proof: the cookie goes too.
                session::forget(&state, viewer).await?;
                response.headers_mut().append(session::SET, session::clear(&state));
            }
            Ok(response)
        }
        Err(err) => Ok(link_refused(&pre, FormErrors::from_error(err)?, viewer.is_some())),
    }
}

#[derive(Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    next: Option<String>,
}

/// `POST /verify-email/resend`: the banner's button.
pub async fn resend_verification(state: AppState, Signed { viewer, form }: Signed<ResendForm>) -> PageResult {
    state.verification().resend(&viewer.principal.user_session()?).await?;
    Ok(Redirect::to(&safe_next_with(form.next.as_deref(), "flash", "verification_sent")).into_response())
}

#[derive(Default, Deserialize)]
pub struct InvitationForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    password: String,
}

fn invitation_form(pre: &PreSession, form: &InvitationForm, errors: &FormErrors) -> Response {
    let body = html! {
        (errors.summary())
        p { "Choose your name and a password to join the workspace you were invited to." }
        form.stack method="post" action="/accept-invitation" {
            (csrf_field(&pre.token))
            input type="hidden" name="token" value=(form.token);
            (Field::new("full_name", "Your name").value(&form.full_name).autocomplete("name").required().render(errors))
            (Field::new("password", "Password").kind("password").autocomplete("new-password")
                .hint("At least 8 characters. Leave empty to sign in with emailed links only.").render(errors))
            div.actions { button type="submit" { "Accept the invitation" } }
        }
    };
    public_page(pre, errors.status(), "Join your team on MoltFlow", None, body)
}

/// `GET /accept-invitation?token=…`: the link of the invitation mail. Nothing is spent until the
/// form is sent.
pub async fn invitation_page(pre: PreSession, q: QueryParams) -> Response {
    let form = InvitationForm { token: q.get("token").unwrap_or("").to_owned(), ..InvitationForm::default() };
    invitation_form(&pre, &form, &FormErrors::default())
}

/// `POST /accept-invitation`: creates the member's account and signs it in.
pub async fn accept_invitation(
    state: AppState,
    Client(meta): Client,
    Public { form, pre }: Public<InvitationForm>,
) -> PageResult {
    let request = AcceptInvitationRequest {
        token: form.token.clone(),
        full_name: form.full_name.clone(),
        password: Some(form.password.clone()).filter(|p| !p.is_empty()),
    };
    match state.invitations().accept(request, &meta).await {
        Ok(pair) => {
            let cookie = session::start(&state, &pair).await?;
            Ok(signed_in_redirect(cookie, "/?flash=joined"))
        }
        Err(err) => Ok(invitation_form(&pre, &form, &FormErrors::from_error(err)?)),
    }
}
