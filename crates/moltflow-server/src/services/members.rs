//! Team members: list, change role, remove (API.md §8). Only an owner grants `owner` or `admin`
//! or touches an owner; a key grants no role holding scopes the key lacks; the last owner can be
//! neither demoted nor removed, even when owners act on each other at once (the tenant's row is
//! locked before owners are counted). A demotion or removal takes back the pending invitations
//! the person can no longer grant.

use moltflow_core::Role;
use moltflow_core::clock::{now_ms, rfc3339};
use moltflow_core::ids::is_uuid;
use moltflow_store::Tx;
use moltflow_store::accounts::{
    UserRow, count_owners, delete_user, find_tenant_user, list_tenant_users, lock_tenant, update_user_role,
};
use moltflow_store::api_keys::revoke_user_api_keys;
use moltflow_store::invitations::revoke_pending_sent_by;
use moltflow_store::sessions::revoke_user_sessions;
use moltflow_types::TenantMember;
use serde_json::json;

use crate::auth::revocation::Invalidation;
use crate::error::{ApiError, ApiResult};
use crate::principal::Principal;
use crate::services::audit::{self, Actor, Entry};
use crate::services::origin::Origin;
use crate::state::App;

pub fn to_dto(u: &UserRow) -> TenantMember {
    TenantMember {
        id: u.id.clone(),
        user_id: u.id.clone(),
        email: u.email.clone(),
        full_name: u.full_name.clone(),
        role: u.role.clone(),
        email_verified: u.email_verified,
        created_at: rfc3339(u.created_at),
    }
}

fn member_not_found() -> ApiError {
    ApiError::missing("Member")
}

fn last_owner() -> ApiError {
    ApiError::conflict(
        "last_owner",
        "The tenant's last owner cannot be demoted or removed; make someone else owner first",
    )
}

fn owner_only(what: &str) -> ApiError {
    ApiError::forbidden("owner_required", format!("Only an owner can {what}"))
}

fn actor(p: &Principal) -> Actor {
    let (kind, id) = p.actor();
    Actor { kind, id: Some(id) }
}

pub async fn list(app: &App, tenant_id: &str) -> ApiResult<Vec<TenantMember>> {
    let mut conn = app.store.conn().await?;
    Ok(list_tenant_users(&mut conn, tenant_id).await?.iter().map(to_dto).collect())
}

/// The caller's role as of now, read after the tenant lock: the principal's copy may be a second
/// old, and an owner demoted a moment ago must not act as owner.
async fn current_role(tx: &mut Tx, p: &Principal) -> ApiResult<Role> {
    let me = find_tenant_user(tx, p.tenant_id(), &p.user.id).await?.ok_or_else(ApiError::not_authenticated)?;
    me.role.parse().map_err(|_| ApiError::internal())
}

/// Starts the transaction of a change that counts owners: the tenant's row is locked first, so
/// that two owners acting on each other at once run one after the other (API.md §8).
async fn begin_locked(app: &App, tenant_id: &str) -> ApiResult<Tx> {
    let mut tx = app.store.begin().await?;
    lock_tenant(&mut tx, tenant_id).await?;
    Ok(tx)
}

pub async fn change_role(
    app: &App,
    p: &Principal,
    user_id: &str,
    role: &str,
    meta: &Origin,
) -> ApiResult<TenantMember> {
    let new_role: Role = role
        .parse()
        .map_err(|_| ApiError::invalid(&["body", "role"], "Input should be 'owner', 'admin' or 'member'", "enum"))?;
    if !is_uuid(user_id) {
        return Err(member_not_found());
    }
    let mut tx = begin_locked(app, p.tenant_id()).await?;
    let target = find_tenant_user(&mut tx, p.tenant_id(), user_id).await?.ok_or_else(member_not_found)?;
    let current: Role = target.role.parse().map_err(|_| ApiError::internal())?;
    let my_role = current_role(&mut tx, p).await?;
    if new_role >= Role::Admin && my_role != Role::Owner {
        return Err(owner_only("grant the owner or admin role"));
    }
    if current == Role::Owner && my_role != Role::Owner {
        return Err(owner_only("change an owner's role"));
    }
    if new_role > current {
        p.require_within(new_role.scopes(), "This role holds scopes the calling key does not")?;
    }
    if current == new_role {
        return Ok(to_dto(&target));
    }
    if current == Role::Owner && count_owners(&mut tx, p.tenant_id()).await? <= 1 {
        return Err(last_owner());
    }
    let now = now_ms();
    update_user_role(&mut tx, &target.id, new_role.as_str(), now).await?;
    // What they invited others into must stay within what they may still grant.
    let invitations = match new_role {
        Role::Member => revoke_pending_sent_by(&mut tx, &target.id, false, now).await?,
        Role::Admin if current == Role::Owner => revoke_pending_sent_by(&mut tx, &target.id, true, now).await?,
        _ => 0,
    };
    audit::record(
        &mut tx,
        Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "member.role_changed",
            target: Some(target.id.clone()),
            meta,
            details: json!({"from": current.as_str(), "to": new_role.as_str(), "email": target.email, "invitations_revoked": invitations}),
        },
    )
    .await?;
    let change = Invalidation::default().user(&target.id);
    change.announce(&mut tx, &app.store, &app.auth_cache).await?;
    tx.commit().await?;
    change.apply(&app.auth_cache).await;
    Ok(to_dto(&UserRow { role: new_role.as_str().to_owned(), updated_at: now, ..target }))
}

/// Removes a member: their sessions, keys and pending invitations stop working at once, then the
/// account is deleted.
pub async fn remove(app: &App, p: &Principal, user_id: &str, meta: &Origin) -> ApiResult<()> {
    if !is_uuid(user_id) {
        return Err(member_not_found());
    }
    let mut tx = begin_locked(app, p.tenant_id()).await?;
    let target = find_tenant_user(&mut tx, p.tenant_id(), user_id).await?.ok_or_else(member_not_found)?;
    if target.role == Role::Owner.as_str() {
        if current_role(&mut tx, p).await? != Role::Owner {
            return Err(owner_only("remove an owner"));
        }
        if count_owners(&mut tx, p.tenant_id()).await? <= 1 {
            return Err(last_owner());
        }
    }
    let now = now_ms();
    let sessions = revoke_user_sessions(&mut tx, &target.id, now).await?;
    let keys = revoke_user_api_keys(&mut tx, &target.id, now).await?;
    let invitations = revoke_pending_sent_by(&mut tx, &target.id, false, now).await?;
    delete_user(&mut tx, &target.id).await?;
    audit::record(
        &mut tx,
        Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "member.removed",
            target: Some(target.id.clone()),
            meta,
            details: json!({"email": target.email, "role": target.role, "sessions_revoked": sessions.len(), "keys_revoked": keys.len(), "invitations_revoked": invitations}),
        },
    )
    .await?;
    let change = Invalidation::default()
        .sessions(sessions)
        .dead_keys(keys.into_iter().flat_map(|(current, previous)| std::iter::once(current).chain(previous)))
        .user(&target.id);
    change.announce(&mut tx, &app.store, &app.auth_cache).await?;
    tx.commit().await?;
    change.apply(&app.auth_cache).await;
    Ok(())
}
