//! Invitations: an owner or admin invites an address into the tenant with a role; the mailed
//! link creates the account there (API.md §8). Only owners invite owners and admins, only
//! verified users invite at all, a key invites into no role holding scopes the key lacks, and the
//! caps on mails per address and invitations per tenant are counted in the database; an address
//! that has an account anywhere cannot be invited (a user belongs to exactly one tenant).

use moltflow_core::clock::{DAY_MS, HOUR_MS, now_ms, rfc3339};
use moltflow_core::ids::{is_uuid, new_id};
use moltflow_core::password::check_new_password;
use moltflow_core::secret::{new_token, sha256_hex};
use moltflow_core::{Email, Role};
use moltflow_store::Tx;
use moltflow_store::accounts::{
    UserRow, find_tenant, find_tenant_user, find_user, find_user_by_email, insert_user, lock_tenant,
};
use moltflow_store::invitations::{
    InvitationRow, accept_invitation, count_tenant_invitations_since, find_invitation, find_invitation_by_token,
    insert_invitation, list_invitations, lock_invited_address, revoke_invitation, revoke_pending_for_email,
};
use moltflow_store::mail::count_mail_of_kind_since;
use moltflow_types::{AcceptInvitationRequest, Invitation, InviteRequest, TokenPair};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Checks, check_name};
use crate::mail::MailKind;
use crate::principal::Principal;
use crate::services::audit::{self, Actor, Entry};
use crate::services::origin::Origin;
use crate::services::sessions::{open_session, token_pair};
use crate::state::App;

pub const INVITATION_LIFETIME_MS: i64 = 7 * DAY_MS;
/// Invitation mails one address may receive in an hour, from all tenants together (API.md §8).
pub const INVITATION_MAILS_PER_ADDRESS_PER_HOUR: i64 = 3;
/// Invitations one tenant may send in 24 hours (API.md §8).
pub const INVITATIONS_PER_TENANT_PER_DAY: i64 = 100;

fn status_of(row: &InvitationRow, now: i64) -> &'static str {
    if row.accepted_at.is_some() {
        "accepted"
    } else if row.revoked_at.is_some() {
        "revoked"
    } else if row.expires_at <= now {
        "expired"
    } else {
        "pending"
    }
}

pub fn to_dto(row: &InvitationRow) -> Invitation {
    Invitation {
        id: row.id.clone(),
        email: row.email.clone(),
        role: row.role.clone(),
        status: status_of(row, now_ms()).to_owned(),
        invited_by: row.invited_by.clone(),
        created_at: rfc3339(row.created_at),
        expires_at: rfc3339(row.expires_at),
        accepted_at: row.accepted_at.map(rfc3339),
        revoked_at: row.revoked_at.map(rfc3339),
    }
}

fn actor(p: &Principal) -> Actor {
    let (kind, id) = p.actor();
    Actor { kind, id: Some(id) }
}

/// Only a verified address may send mail from our domain in the tenant's name (a key invites as
/// its creator). Read in the transaction: the principal's copy may be a second old.
async fn require_verified_inviter(tx: &mut Tx, p: &Principal) -> ApiResult<()> {
    let inviter = find_user(tx, &p.user.id).await?.ok_or_else(ApiError::not_authenticated)?;
    if inviter.email_verified {
        Ok(())
    } else {
        Err(ApiError::forbidden("email_unverified", "Verify your email address before inviting anyone"))
    }
}

/// The caps of API.md §8, counted in the database so that they hold across nodes: invitation
/// mails to one address in the last hour (from any tenant, in the outbox, which keeps its rows
/// when a tenant is erased) and invitations of one tenant in the last 24 hours.
async fn within_invitation_caps(tx: &mut Tx, tenant_id: &str, email: &str, now: i64) -> ApiResult<()> {
    let kind = MailKind::Invitation.template();
    let (mails, oldest) = count_mail_of_kind_since(tx, email, kind, now - HOUR_MS).await?;
    if mails >= INVITATION_MAILS_PER_ADDRESS_PER_HOUR {
        return Err(cap_reached("This address has had its invitations for this hour", oldest, HOUR_MS, now));
    }
    let (sent, oldest) = count_tenant_invitations_since(tx, tenant_id, now - DAY_MS).await?;
    if sent >= INVITATIONS_PER_TENANT_PER_DAY {
        return Err(cap_reached("This tenant has sent its invitations for today", oldest, DAY_MS, now));
    }
    Ok(())
}

/// `429 rate_limited`, retry when the oldest counted row leaves the window.
fn cap_reached(detail: &str, oldest: Option<i64>, window: i64, now: i64) -> ApiError {
    let wait_ms = oldest.map_or(window, |at| at + window - now).max(1_000);
    ApiError::too_many("rate_limited", detail, (wait_ms as u64).div_ceil(1_000))
}

pub async fn invite(app: &App, p: &Principal, req: InviteRequest, meta: &Origin) -> ApiResult<Invitation> {
    let mut checks = Checks::default();
    let email =
        Email::parse(&req.email).map_err(|e| checks.fail(&["body", "email"], e.to_string(), "value_error")).ok();
    let role = match req.role.as_deref().unwrap_or("member").parse::<Role>() {
        Ok(r) => Some(r),
        Err(()) => {
            checks.fail(&["body", "role"], "Input should be 'owner', 'admin' or 'member'", "enum");
            None
        }
    };
    checks.finish()?;
    let (Some(email), Some(role)) = (email, role) else { return Err(ApiError::internal()) };
    if role >= Role::Admin && p.role != Role::Owner {
        return Err(ApiError::forbidden("owner_required", "Only an owner can invite admins and owners"));
    }
    p.require_within(role.scopes(), "This role holds scopes the calling key does not")?;
    let now = now_ms();
    let raw = new_token();
    let row = InvitationRow {
        id: new_id(),
        tenant_id: p.tenant_id().to_owned(),
        email: email.as_str().to_owned(),
        role: role.as_str().to_owned(),
        token_hash: sha256_hex(&raw),
        invited_by: Some(p.user.id.clone()),
        created_at: now,
        expires_at: now + INVITATION_LIFETIME_MS,
        accepted_at: None,
        revoked_at: None,
    };
    let mut tx = app.store.begin().await?;
    // The tenant's lock, then the address's: the caps below count rows in this transaction, and
    // concurrent invitations (on any node) wait for each other's commit before counting.
    lock_tenant(&mut tx, p.tenant_id()).await?;
    lock_invited_address(&mut tx, email.as_str()).await?;
    require_verified_inviter(&mut tx, p).await?;
    within_invitation_caps(&mut tx, p.tenant_id(), email.as_str(), now).await?;
    if find_user_by_email(&mut tx, email.as_str()).await?.is_some() {
        return Err(ApiError::conflict("email_taken", "An account with this email already exists"));
    }
    let tenant = find_tenant(&mut tx, p.tenant_id()).await?.ok_or_else(ApiError::internal)?;
    revoke_pending_for_email(&mut tx, p.tenant_id(), email.as_str(), now).await?;
    insert_invitation(&mut tx, &row).await?;
    let link = app.mailer.link("/accept-invitation", &raw);
    let vars = [
        ("tenant", tenant.name.as_str()),
        ("inviter", p.user.full_name.as_str()),
        ("role", role.as_str()),
        ("email", email.as_str()),
        ("name", email.as_str()),
        ("link", link.as_str()),
        ("expires_in", "7 days"),
    ];
    app.mailer.enqueue(&mut tx, MailKind::Invitation, email.as_str(), &vars).await?;
    audit::record(
        &mut tx,
        Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "member.invited",
            target: Some(row.id.clone()),
            meta,
            details: json!({"email": row.email, "role": row.role}),
        },
    )
    .await?;
    tx.commit().await?;
    app.mailer.wake();
    Ok(to_dto(&row))
}

pub async fn list(app: &App, tenant_id: &str) -> ApiResult<Vec<Invitation>> {
    let mut conn = app.store.conn().await?;
    Ok(list_invitations(&mut conn, tenant_id).await?.iter().map(to_dto).collect())
}

/// Idempotent: revoking an accepted or revoked invitation answers the same and changes nothing.
pub async fn revoke(app: &App, p: &Principal, id: &str, meta: &Origin) -> ApiResult<()> {
    if !is_uuid(id) {
        return Err(ApiError::missing("Invitation"));
    }
    let mut tx = app.store.begin().await?;
    let row = find_invitation(&mut tx, p.tenant_id(), id).await?.ok_or_else(|| ApiError::missing("Invitation"))?;
    if revoke_invitation(&mut tx, &row.id, now_ms()).await? {
        audit::record(
            &mut tx,
            Entry {
                tenant_id: p.tenant_id(),
                actor: actor(p),
                action: "invitation.revoked",
                target: Some(row.id.clone()),
                meta,
                details: json!({"email": row.email}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn invalid_invitation() -> ApiError {
    ApiError::bad_request("invalid_token", "This invitation is invalid, expired, revoked or already used")
}

/// Whether the invitation's sender is still in the tenant with a role that may grant the invited
/// one (demotions and removals revoke what they can no longer grant; this catches anything that
/// slipped past, such as a role changed outside the API).
async fn inviter_may_still_grant(tx: &mut Tx, invitation: &InvitationRow) -> ApiResult<bool> {
    let Some(inviter_id) = invitation.invited_by.as_deref() else { return Ok(false) };
    let Some(inviter) = find_tenant_user(tx, &invitation.tenant_id, inviter_id).await? else { return Ok(false) };
    let (Ok(inviter_role), Ok(role)) = (inviter.role.parse::<Role>(), invitation.role.parse::<Role>()) else {
        return Ok(false);
    };
    Ok(match role {
        Role::Member => inviter_role >= Role::Admin,
        Role::Admin | Role::Owner => inviter_role == Role::Owner,
    })
}

/// Creates the invited account in the inviting tenant and signs it in. The address is verified:
/// the link was mailed to it.
pub async fn accept(app: &App, req: AcceptInvitationRequest, meta: &Origin) -> ApiResult<TokenPair> {
    let raw = req.token.trim();
    if raw.is_empty() || raw.len() > 128 {
        return Err(invalid_invitation());
    }
    let invitation = {
        let mut conn = app.store.conn().await?;
        find_invitation_by_token(&mut conn, &sha256_hex(raw)).await?
    };
    let now = now_ms();
    let invitation = invitation.filter(|i| status_of(i, now) == "pending").ok_or_else(invalid_invitation)?;
    let mut checks = Checks::default();
    let full_name = check_name(&mut checks, &["body", "full_name"], &req.full_name, 100);
    if let Some(password) = &req.password
        && let Err(e) = check_new_password(password, &invitation.email, &[&full_name])
    {
        checks.fail(&["body", "password"], e.to_string(), "value_error");
    }
    checks.finish()?;
    let password_hash = match &req.password {
        Some(p) => Some(app.hasher.hash(p).await?),
        None => None,
    };
    let user = UserRow {
        id: new_id(),
        tenant_id: invitation.tenant_id.clone(),
        email: invitation.email.clone(),
        full_name,
        role: invitation.role.clone(),
        password_hash,
        email_verified: true,
        timezone: "UTC".to_owned(),
        locale: "en".to_owned(),
        created_at: now,
        updated_at: now,
    };
    let mut tx = app.store.begin().await?;
    if !accept_invitation(&mut tx, &invitation.id, now).await? || !inviter_may_still_grant(&mut tx, &invitation).await?
    {
        return Err(invalid_invitation());
    }
    insert_user(&mut tx, &user).await.map_err(|e| {
        if e.is_unique_violation() {
            ApiError::conflict("email_taken", "An account with this email already exists")
        } else {
            e.into()
        }
    })?;
    let opened = open_session(&mut tx, &user, "invitation", meta).await?;
    audit::record(
        &mut tx,
        Entry {
            tenant_id: &user.tenant_id,
            actor: Actor::user(&user.id),
            action: "member.joined",
            target: Some(user.id.clone()),
            meta,
            details: json!({"email": user.email, "role": user.role, "invitation_id": invitation.id}),
        },
    )
    .await?;
    tx.commit().await?;
    token_pair(app, &user, opened)
}
