//! Members: the list, invitations (with role) and their revocation, role changes and removal
//! (behind a confirmation page). Only what the viewer's role may do is offered: a member sees the
//! list read-only; an admin invites members and manages admins and members; an owner does all.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use moltflow_core::Role;
use moltflow_core::Scope;
use moltflow_types::{Invitation, InviteRequest, TenantMember};
use serde::Deserialize;

use crate::dashboard::csrf::Signed;
use crate::dashboard::errors::PageResult;
use crate::dashboard::forms::{Field, FormErrors, csrf_field};
use crate::dashboard::kit::{self, when};
use crate::dashboard::session::{Client, Viewer};
use crate::extract::QueryParams;
use crate::state::AppState;
use moltflow_app::services::principal::guards::*;

#[derive(Default, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// The roles the viewer may give (`invite` and role changes): only an owner grants admin or owner.
fn grantable_roles(viewer: &Viewer) -> &'static [&'static str] {
    if viewer.principal.role == Role::Owner { &["member", "admin", "owner"] } else { &["member"] }
}

/// Whether the viewer may change or remove `target` (an owner only by an owner; nobody here acts
/// on themselves: their own account is on the profile page).
fn may_manage(viewer: &Viewer, target: &TenantMember) -> bool {
    viewer.may(Scope::MEMBERS_MANAGE)
        && target.user_id != viewer.user().id
        && (viewer.principal.role == Role::Owner || target.role != Role::Owner)
}

fn role_select(id: &str, roles: &[&str], selected: &str) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in roles { option value=(r) selected[*r == selected] { (capital(r)) } }
        }
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn member_rows(viewer: &Viewer, list: &[TenantMember]) -> Markup {
    let roles = grantable_roles(viewer);
    html! {
        div.table-wrap tabindex="0" role="region" aria-label="Members" { table {
            caption.visually-hidden { "Members" }
            thead { tr { th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Joined" } th scope="col" { "Actions" } } }
            tbody { @for m in list {
                tr {
                    th scope="row" { (m.full_name) @if m.user_id == viewer.user().id { " (you)" } }
                    td { (m.email) @if !m.email_verified { " " span.muted { "(unverified)" } } }
                    td {
                        // An admin may only move admins down to member: the select would offer nothing else.
                        @if may_manage(viewer, m) && (roles.len() > 1 || m.role == Role::Admin) {
                            form.inline-form method="post" action=(format!("/members/{}/role", m.user_id)) {
                                (csrf_field(&viewer.csrf))
                                label.visually-hidden for=(format!("role-{}", m.user_id)) { "Role of " (m.full_name) }
                                (role_select(&format!("role-{}", m.user_id), roles, m.role.as_str()))
                                button.secondary type="submit" { "Change" span.visually-hidden { " the role of " (m.full_name) } }
                            }
                        } @else { (capital(m.role.as_str())) }
                    }
                    td { (when(&m.created_at)) }
                    td { @if may_manage(viewer, m) {
                        a href=(format!("/members/{}/remove", m.user_id)) { "Remove" span.visually-hidden { " " (m.full_name) } "…" }
                    } }
                }
            } }
        } }
    }
}

fn invitation_rows(viewer: &Viewer, list: &[Invitation]) -> Markup {
    let pending: Vec<&Invitation> = list.iter().filter(|i| i.status == "pending").collect();
    html! {
        @if pending.is_empty() { p { "No pending invitations." } } @else {
            div.table-wrap tabindex="0" role="region" aria-label="Pending invitations" { table {
                caption.visually-hidden { "Pending invitations" }
                thead { tr { th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Sent" } th scope="col" { "Expires" }
                    @if viewer.may(Scope::MEMBERS_MANAGE) { th scope="col" { "Actions" } } } }
                tbody { @for i in pending { tr {
                    th scope="row" { (i.email) } td { (capital(i.role.as_str())) } td { (when(&i.created_at)) } td { (when(&i.expires_at)) }
                    @if viewer.may(Scope::MEMBERS_MANAGE) { td {
                        form.inline method="post" action=(format!("/members/invitations/{}/revoke", i.id))
                            data-confirm=(format!("Revoke the invitation of {}?", i.email)) {
                            (csrf_field(&viewer.csrf))
                            button.secondary type="submit" { "Revoke" span.visually-hidden { " the invitation of " (i.email) } }
                        }
                    } }
                } } }
            } }
        }
    }
}

fn invite_form(viewer: &Viewer, form: &InviteForm, errors: &FormErrors) -> Markup {
    let role_error = errors.field("role");
    html! {
        @if !viewer.user().email_verified {
            p { "Verify your email address (see the banner above) to invite people." }
        } @else {
            (errors.summary())
            form.stack method="post" action="/members/invite" {
                (csrf_field(&viewer.csrf))
                (Field::new("email", "Email").kind("email").value(&form.email).autocomplete("off").required().render(errors))
                div.field.invalid[role_error.is_some()] {
                    label for="f-role" { "Role" }
                    (role_select("f-role", grantable_roles(viewer), if form.role.is_empty() { "member" } else { &form.role }))
                    @if let Some(m) = role_error { p.field-error { (m) } }
                }
                div.actions { button type="submit" { "Send the invitation" } }
            }
        }
    }
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    invite: &InviteForm,
    invite_errors: &FormErrors,
    list_errors: &FormErrors,
    flash: Option<&str>,
) -> PageResult {
    let list = state.members().list(&viewer.principal.authorize::<MembersRead>()?).await?;
    let pending = state.invitations().list(&viewer.principal.authorize::<MembersRead>()?).await?;
    let manage = viewer.may(Scope::MEMBERS_MANAGE);
    let body = html! {
        section.card aria-labelledby="members-title" {
            h2 #members-title { "Members" }
            @if !manage { (kit::read_only("the members")) }
            (list_errors.summary())
            (member_rows(viewer, &list))
        }
        section.card aria-labelledby="pending-title" {
            h2 #pending-title { "Pending invitations" }
            (invitation_rows(viewer, &pending))
        }
        @if manage {
            section.card aria-labelledby="invite-title" {
                h2 #invite-title { "Invite someone" }
                (invite_form(viewer, invite, invite_errors))
            }
        }
    };
    let status = if invite_errors.is_empty() { list_errors.status() } else { invite_errors.status() };
    Ok(kit::page(viewer, "/members", "Members", flash, status, body))
}

/// `GET /members`.
pub async fn page(state: AppState, viewer: Viewer, q: QueryParams) -> PageResult {
    if !viewer.may(Scope::MEMBERS_READ) {
        return Ok(kit::page(&viewer, "/members", "Members", None, StatusCode::OK, kit::read_only("nothing here")));
    }
    let none = FormErrors::default();
    render(&state, &viewer, &InviteForm::default(), &none, &FormErrors::default(), kit::flash(q.get("flash"))).await
}

/// `POST /members/invite`.
pub async fn invite(state: AppState, Client(meta): Client, Signed { viewer, form }: Signed<InviteForm>) -> PageResult {
    viewer.principal.require(Scope::MEMBERS_MANAGE)?;
    let request = InviteRequest { email: form.email.clone(), role: Some(form.role.clone()).filter(|r| !r.is_empty()) };
    match state.invitations().invite(&viewer.principal.authorize::<MembersManage>()?, request, &meta).await {
        Ok(_) => Ok(Redirect::to("/members?flash=invited").into_response()),
        Err(err) => {
            let errors = FormErrors::from_error(err)?;
            render(&state, &viewer, &form, &errors, &FormErrors::default(), None).await
        }
    }
}

/// `POST /members/invitations/{id}/revoke`.
pub async fn revoke_invitation(
    state: AppState,
    Client(meta): Client,
    Path(id): Path<String>,
    Signed { viewer, .. }: Signed<Vec<(String, String)>>,
) -> PageResult {
    viewer.principal.require(Scope::MEMBERS_MANAGE)?;
    state.invitations().revoke(&viewer.principal.authorize::<MembersManage>()?, &id, &meta).await?;
    Ok(Redirect::to("/members?flash=invitation_revoked").into_response())
}

/// `POST /members/{user_id}/role`: a refusal (the last owner) is said above the list.
pub async fn change_role(
    state: AppState,
    Client(meta): Client,
    Path(user_id): Path<String>,
    Signed { viewer, form }: Signed<RoleForm>,
) -> PageResult {
    viewer.principal.require(Scope::MEMBERS_MANAGE)?;
    match state
        .members()
        .change_role(&viewer.principal.authorize::<MembersManage>()?, &user_id, &form.role, &meta)
        .await
    {
        Ok(_) => Ok(Redirect::to("/members?flash=role_changed").into_response()),
        Err(err) => {
            let errors = FormErrors::from_error(err)?;
            render(&state, &viewer, &InviteForm::default(), &FormErrors::default(), &errors, None).await
        }
    }
}

/// `GET /members/{user_id}/remove`: the confirmation step.
pub async fn remove_page(state: AppState, viewer: Viewer, Path(user_id): Path<String>) -> PageResult {
    viewer.principal.require(Scope::MEMBERS_MANAGE)?;
    let list = state.members().list(&viewer.principal.authorize::<MembersRead>()?).await?;
    let Some(target) = list.iter().find(|m| m.user_id == user_id) else {
        return Err(crate::error::ApiError::missing("Member").into());
    };
    let question = html! {
        "Remove " strong { (target.full_name) } " (" (target.email) ") from the workspace? Their sessions and API keys stop working at once and their account is deleted."
    };
    let action = format!("/members/{}/remove", target.user_id);
    Ok(kit::confirm(
        &viewer,
        kit::Confirm {
            nav: "/members",
            title: "Remove a member",
            question,
            action: &action,
            confirm: html! { "Remove " (target.full_name) },
            back: ("/members", "Keep them"),
        },
    ))
}

/// `POST /members/{user_id}/remove`.
pub async fn remove(
    state: AppState,
    Client(meta): Client,
    Path(user_id): Path<String>,
    Signed { viewer, .. }: Signed<Vec<(String, String)>>,
) -> PageResult {
    viewer.principal.require(Scope::MEMBERS_MANAGE)?;
    match state.members().remove(&viewer.principal.authorize::<MembersManage>()?, &user_id, &meta).await {
        Ok(()) => Ok(Redirect::to("/members?flash=member_removed").into_response()),
        Err(err) => {
            let errors = FormErrors::from_error(err)?;
            render(&state, &viewer, &InviteForm::default(), &FormErrors::default(), &errors, None).await
        }
    }
}
