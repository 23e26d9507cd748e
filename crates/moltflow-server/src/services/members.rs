//! Team members: list, change role, remove (API.md §8). Only an owner grants `owner` or `admin`
//! or touches an owner; the last owner can be neither demoted nor removed.

use moltflow_core::Role;
use moltflow_core::clock::{now_ms, rfc3339};
use moltflow_core::ids::is_uuid;
use moltflow_store::accounts::{
    UserRow, count_owners, delete_user, find_tenant_user, list_tenant_users, update_user_role,
};
use moltflow_store::api_keys::revoke_user_api_keys;
use moltflow_store::sessions::revoke_user_sessions;
use moltflow_types::TenantMember;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::ClientMeta;
use crate::principal::Principal;
use crate::services::audit::{self, Actor, Entry};
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

pub async fn change_role(
    app: &App,
    p: &Principal,
    user_id: &str,
    role: &str,
    meta: &ClientMeta,
) -> ApiResult<TenantMember> {
    let new_role: Role = role
        .parse()
        .map_err(|_| ApiError::invalid(&["body", "role"], "Input should be 'owner', 'admin' or 'member'", "enum"))?;
    if !is_uuid(user_id) {
        return Err(member_not_found());
    }
    let mut tx = app.store.begin().await?;
    let target = find_tenant_user(&mut tx, p.tenant_id(), user_id).await?.ok_or_else(member_not_found)?;
    let current: Role = target.role.parse().map_err(|_| ApiError::internal())?;
    if new_role >= Role::Admin && p.role != Role::Owner {
        return Err(owner_only("grant the owner or admin role"));
    }
    if current == Role::Owner && p.role != Role::Owner {
        return Err(owner_only("change an owner's role"));
    }
    if current == new_role {
        return Ok(to_dto(&target));
    }
    if current == Role::Owner && count_owners(&mut tx, p.tenant_id()).await? <= 1 {
        return Err(last_owner());
    }
    let now = now_ms();
    update_user_role(&mut tx, &target.id, new_role.as_str(), now).await?;
    audit::record(
        &mut tx,
        Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "member.role_changed",
            target: Some(target.id.clone()),
            meta,
            details: json!({"from": current.as_str(), "to": new_role.as_str(), "email": target.email}),
        },
    )
    .await?;
    tx.commit().await?;
    app.auth_cache.forget_user(&target.id);
    Ok(to_dto(&UserRow { role: new_role.as_str().to_owned(), updated_at: now, ..target }))
}

/// Removes a member: their sessions and keys stop working at once, then the account is deleted.
pub async fn remove(app: &App, p: &Principal, user_id: &str, meta: &ClientMeta) -> ApiResult<()> {
    if !is_uuid(user_id) {
        return Err(member_not_found());
    }
    let mut tx = app.store.begin().await?;
    let target = find_tenant_user(&mut tx, p.tenant_id(), user_id).await?.ok_or_else(member_not_found)?;
    if target.role == Role::Owner.as_str() {
        if p.role != Role::Owner {
            return Err(owner_only("remove an owner"));
        }
        if count_owners(&mut tx, p.tenant_id()).await? <= 1 {
            return Err(last_owner());
        }
    }
    let now = now_ms();
    let sessions = revoke_user_sessions(&mut tx, &target.id, now).await?;
    let keys = revoke_user_api_keys(&mut tx, &target.id, now).await?;
    delete_user(&mut tx, &target.id).await?;
    audit::record(
        &mut tx,
        Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "member.removed",
            target: Some(target.id.clone()),
            meta,
            details: json!({"email": target.email, "role": target.role, "sessions_revoked": sessions.len(), "keys_revoked": keys.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    let hashes: Vec<String> =
        keys.into_iter().flat_map(|(current, previous)| std::iter::once(current).chain(previous)).collect();
    app.auth_cache.forget_key_hashes(&hashes).await;
    app.auth_cache.forget_sessions(&sessions).await;
    app.auth_cache.forget_user(&target.id);
    Ok(())
}
