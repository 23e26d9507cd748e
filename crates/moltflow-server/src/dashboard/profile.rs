//! Profile: name, time zone and language; the password; signing out here or everywhere; deleting
//! the account (with a confirmation page that asks for the password).

use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use moltflow_types::{DeleteAccountRequest, SetPasswordRequest, UpdateProfileRequest};
use serde::Deserialize;

use crate::dashboard::account::Empty;
use crate::dashboard::csrf::Signed;
use crate::dashboard::errors::PageResult;
use crate::dashboard::forms::{Field, FormErrors, csrf_field};
use crate::dashboard::layout;
use crate::dashboard::session::{self, Client, Viewer};
use crate::extract::QueryParams;
use crate::state::AppState;
use moltflow_app::services::principal::guards::*;
use moltflow_core::Scope;

#[derive(Default, Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    locale: String,
}

#[derive(Default, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm_password: String,
}

/// What the profile page shows: the forms as typed (or as stored) and the errors of the one sent.
struct Shown<'a> {
    profile: ProfileForm,
    profile_errors: FormErrors,
    password_errors: FormErrors,
    flash: Option<&'a str>,
}

fn render(viewer: &Viewer, shown: Shown) -> Response {
    let user = viewer.user();
    let may_edit = viewer.may(Scope::ACCOUNT_MANAGE);
    let has_password = user.password_hash.is_some();
    let status =
        if !shown.profile_errors.is_empty() { shown.profile_errors.status() } else { shown.password_errors.status() };
    let p = &shown.profile;
    let body = html! {
        section.card aria-labelledby="about-title" {
            h2 #about-title { "About you" }
            p { "Signed in as " strong { (user.email) } " (" (user.role) ")." }
            @if may_edit {
                (shown.profile_errors.summary())
                form.stack method="post" action="/profile" {
                    (csrf_field(&viewer.csrf))
                    (Field::new("full_name", "Name").value(&p.full_name).autocomplete("name").required().render(&shown.profile_errors))
                    (Field::new("timezone", "Time zone").value(&p.timezone).required()
                        .hint("An IANA name such as Europe/Lisbon or America/New_York.").render(&shown.profile_errors))
                    (Field::new("locale", "Language").value(&p.locale).autocomplete("language").required()
                        .hint("A language tag such as en, pt-BR or de.").render(&shown.profile_errors))
                    div.actions { button type="submit" { "Save" } }
                }
            } @else {
                p { "Name: " (user.full_name) } p { "Time zone: " (user.timezone) } p { "Language: " (user.locale) }
            }
        }
        section.card aria-labelledby="password-title" {
            h2 #password-title { @if has_password { "Change your password" } @else { "Set a password" } }
            (shown.password_errors.summary())
            form.stack method="post" action="/profile/password" {
                (csrf_field(&viewer.csrf))
                @if has_password {
                    (Field::new("current_password", "Current password").kind("password").autocomplete("current-password").required().render(&shown.password_errors))
                }
                (Field::new("password", "New password").kind("password").autocomplete("new-password").required()
                    .hint("At least 8 characters; a passphrase of a few words is best.").render(&shown.password_errors))
                (Field::new("confirm_password", "New password again").kind("password").autocomplete("new-password").required().render(&shown.password_errors))
                div.actions { button type="submit" { @if has_password { "Change password" } @else { "Set password" } } }
            }
            @if has_password { p.muted { "Changing it signs out your other devices." } }
        }
        section.card aria-labelledby="sessions-title" {
            h2 #sessions-title { "Sessions" }
            div.actions {
                form.inline method="post" action="/sign-out" {
                    (csrf_field(&viewer.csrf))
                    button.secondary type="submit" { "Sign out" }
                }
                form.inline method="post" action="/profile/sign-out-everywhere" data-confirm="Sign out on every device, this one included?" {
                    (csrf_field(&viewer.csrf))
                    button.secondary type="submit" { "Sign out everywhere" }
                }
            }
            p.muted { "Signing out everywhere also ends the sessions of the API and the command line." }
        }
        section.card aria-labelledby="delete-title" {
            h2 #delete-title { "Delete your account" }
            p { "Your account is erased. When you are the only member, the workspace and its data go too." }
            p { a href="/profile/delete" { "Delete my account…" } }
        }
    };
    let mut response = layout::signed_in(viewer, "/profile", "Profile", shown.flash, body).into_response();
    *response.status_mut() = status;
    response
}

fn stored(viewer: &Viewer) -> ProfileForm {
    let user = viewer.user();
    ProfileForm { full_name: user.full_name.clone(), timezone: user.timezone.clone(), locale: user.locale.clone() }
}

/// `GET /profile`.
pub async fn page(viewer: Viewer, q: QueryParams) -> Response {
    let shown = Shown {
        profile: stored(&viewer),
        profile_errors: FormErrors::default(),
        password_errors: FormErrors::default(),
        flash: layout::flash(q.get("flash")),
    };
    render(&viewer, shown)
}

/// `POST /profile`: name, time zone and language (the API's `PATCH /users/me`).
pub async fn update(state: AppState, Signed { viewer, form }: Signed<ProfileForm>) -> PageResult {
    let request = UpdateProfileRequest {
        full_name: Some(form.full_name.clone()),
        timezone: Some(form.timezone.clone()),
        locale: Some(form.locale.clone()),
    };
    match state.users().update_me(&viewer.principal.authorize::<AccountManage>()?, request).await {
        Ok(_) => Ok(Redirect::to("/profile?flash=profile_saved").into_response()),
        Err(err) => {
            let shown = Shown {
                profile: form,
                profile_errors: FormErrors::from_error(err)?,
                password_errors: FormErrors::default(),
                flash: None,
            };
            Ok(render(&viewer, shown))
        }
    }
}

/// `POST /profile/password`: set or change the password; a change signs out the other sessions.
pub async fn change_password(
    state: AppState,
    Client(meta): Client,
    Signed { viewer, form }: Signed<PasswordForm>,
) -> PageResult {
    let mut errors = FormErrors::default();
    if form.password != form.confirm_password {
        errors.add("confirm_password", "The two passwords differ.");
    } else {
        let current = Some(form.current_password.clone()).filter(|p| !p.is_empty());
        let request = SetPasswordRequest { password: form.password.clone(), current_password: current };
        match state.users().set_password(&viewer.principal.user_session()?, request, &meta).await {
            Ok(()) => return Ok(Redirect::to("/profile?flash=password_changed").into_response()),
            Err(err) => errors = FormErrors::from_error(err)?,
        }
    }
    let shown =
        Shown { profile: stored(&viewer), profile_errors: FormErrors::default(), password_errors: errors, flash: None };
    Ok(render(&viewer, shown))
}

/// `POST /profile/sign-out-everywhere`: revokes every session of the user (API ones too).
pub async fn sign_out_everywhere(
    state: AppState,
    Client(meta): Client,
    Signed { viewer, .. }: Signed<Empty>,
) -> PageResult {
    state.sessions().logout(&viewer.principal.user_session()?, true, &meta).await?;
    session::forget(&state, &viewer).await?;
    let mut response = Redirect::to("/sign-in?flash=signed_out_everywhere").into_response();
    response.headers_mut().append(session::SET, session::clear(&state));
    Ok(response)
}

#[derive(Default, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    confirm: String,
}

fn delete_form(viewer: &Viewer, errors: &FormErrors) -> Response {
    let has_password = viewer.user().password_hash.is_some();
    let body = html! {
        (errors.summary())
        div.alert.warn role="note" {
            p { "This erases your account at once and cannot be undone. When you are the only member, the workspace, its API keys, usage and audit log are erased too, and a paid subscription is cancelled." }
        }
        form.stack method="post" action="/profile/delete" {
            (csrf_field(&viewer.csrf))
            @if has_password {
                (Field::new("current_password", "Your password").kind("password").autocomplete("current-password").required().render(errors))
            } @else {
                p { "Without a password, deleting needs a session opened by an emailed sign-in link less than 10 minutes ago." }
            }
            (Field::new("confirm", "Type DELETE to confirm").autocomplete("off").required().render(errors))
            div.actions { button.danger type="submit" { "Delete my account" } a href="/profile" { "Keep my account" } }
        }
    };
    let mut response = layout::signed_in(viewer, "/profile", "Delete your account", None, body).into_response();
    *response.status_mut() = errors.status();
    response
}

/// `GET /profile/delete`: the confirmation.
pub async fn delete_page(viewer: Viewer) -> Response {
    delete_form(&viewer, &FormErrors::default())
}

/// `POST /profile/delete`: erases the account (the API's `DELETE /users/me`) and signs out.
pub async fn delete(state: AppState, Client(meta): Client, Signed { viewer, form }: Signed<DeleteForm>) -> PageResult {
    if form.confirm.trim() != "DELETE" {
        let mut errors = FormErrors::default();
        errors.add("confirm", "Type DELETE in capitals to confirm.");
        return Ok(delete_form(&viewer, &errors));
    }
    let current = Some(form.current_password.clone()).filter(|p| !p.is_empty());
    match state
        .users()
        .delete_me(&viewer.principal.user_session()?, DeleteAccountRequest { current_password: current }, &meta)
        .await
    {
        Ok(()) => {
            let mut response = Redirect::to("/sign-in?flash=account_deleted").into_response();
            response.headers_mut().append(session::SET, session::clear(&state));
            Ok(response)
        }
        Err(err) => Ok(delete_form(&viewer, &FormErrors::from_error(err)?)),
    }
}
