//! Team members: list, change role, remove (API.md §8). Only an owner grants `owner` or `admin`
//! or touches an owner; a key grants no role holding scopes the key lacks; the last owner can be
//! neither demoted nor removed, even when owners act on each other at once (the tenant's row is
//! locked before owners are counted). A demotion or removal takes back the pending invitations
//! the person can no longer grant.

use moltflow_core::Role;
use moltflow_core::clock::{Clock, rfc3339};
use moltflow_core::ids::is_uuid;
use moltflow_store::accounts::{
    UserRow, count_owners, delete_user, find_tenant_user, list_tenant_users, lock_tenant, update_user_role,
};
use moltflow_store::api_keys::revoke_user_api_keys;
use moltflow_store::invitations::revoke_pending_sent_by;
use moltflow_store::sessions::revoke_user_sessions;
use moltflow_store::{Store, Tx};
use moltflow_types::TenantMember;
use serde_json::json;

use crate::auth::cache::AuthCache;
use crate::auth::revocation::Invalidation;
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Failure, Outcome};
use crate::services::origin::Origin;
use crate::services::principal::guards::{MembersManage, MembersRead};
use crate::services::principal::{Authorized, Principal};
use crate::services::standing::{current_caller, require_verified};

/// What the member use cases work with.
pub struct Members<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    /// A changed role or a removed member takes effect at once on this node.
    pub auth_cache: &'a AuthCache,
}

pub fn to_dto(u: &UserRow) -> TenantMember {
    TenantMember {
        id: u.id.clone(),
        user_id: u.id.clone(),
        email: u.email.clone(),
        full_name: u.full_name.clone(),
        role: u.role,
        email_verified: u.email_verified,
        created_at: rfc3339(u.created_at),
    }
}

fn member_not_found() -> Failure {
    Failure::NotFound("Member")
}

fn last_owner() -> Failure {
    Failure::conflict(
        "last_owner",
        "The tenant's last owner cannot be demoted or removed; make someone else owner first",
    )
}

fn owner_only(what: &str) -> Failure {
    Failure::forbidden("owner_required", format!("Only an owner can {what}"))
}

fn actor(p: &Principal) -> Actor {
    let (kind, id) = p.actor();
    Actor { kind, id: Some(id) }
}

/// The caller's role as of now, read after the tenant lock: the principal's copy may be a second
/// old, and an owner demoted a moment ago must not act as owner.
async fn current_role(tx: &mut Tx, p: &Principal) -> Outcome<Role> {
    let me = find_tenant_user(tx, p.tenant_id(), &p.user.id).await?.ok_or_else(Failure::not_authenticated)?;
    Ok(me.role)
}

impl Members<'_> {
    /// Starts the transaction of a change that counts owners: the tenant's row is locked first, so
    /// that two owners acting on each other at once run one after the other (API.md §8).
    async fn begin_locked(&self, tenant_id: &str) -> Outcome<Tx> {
        let mut tx = self.store.begin().await?;
        lock_tenant(&mut tx, tenant_id).await?;
        Ok(tx)
    }

    /// The tenant's users, oldest first.
    pub async fn list(&self, p: &Authorized<MembersRead>) -> Outcome<Vec<TenantMember>> {
        let mut conn = self.store.conn().await?;
        Ok(list_tenant_users(&mut conn, p.tenant_id()).await?.iter().map(to_dto).collect())
    }

    pub async fn change_role(
        &self,
        p: &Authorized<MembersManage>,
        user_id: &str,
        role: &str,
        origin: &Origin,
    ) -> Outcome<TenantMember> {
        let new_role: Role = role
            .parse()
            .map_err(|_| Failure::invalid("role", "Input should be 'owner', 'admin' or 'member'", "enum"))?;
        if !is_uuid(user_id) {
            return Err(member_not_found());
        }
        let mut tx = self.begin_locked(p.tenant_id()).await?;
        let target = find_tenant_user(&mut tx, p.tenant_id(), user_id).await?.ok_or_else(member_not_found)?;
        let current = target.role;
        let me = current_caller(&mut tx, p, self.clock.now_ms()).await?;
        let my_role = me.role;
        if new_role >= Role::Admin && my_role != Role::Owner {
            return Err(owner_only("grant the owner or admin role"));
        }
        if current == Role::Owner && my_role != Role::Owner {
            return Err(owner_only("change an owner's role"));
        }
        if new_role > current {
            p.require_within(new_role.scopes(), "This role holds scopes the calling key does not")?;
            if new_role >= Role::Admin {
                require_verified(&me, "granting the owner or admin role")?;
            }
        }
        if current == new_role {
            return Ok(to_dto(&target));
        }
        if current == Role::Owner && count_owners(&mut tx, p.tenant_id()).await? <= 1 {
            return Err(last_owner());
        }
        let now = self.clock.now_ms();
        update_user_role(&mut tx, &target.id, new_role, now).await?;
        // What they invited others into must stay within what they may still grant.
        let invitations = match new_role {
            Role::Member => revoke_pending_sent_by(&mut tx, &target.id, false, now).await?,
            Role::Admin if current == Role::Owner => revoke_pending_sent_by(&mut tx, &target.id, true, now).await?,
            _ => 0,
        };
        let entry = Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "member.role_changed",
            target: Some(target.id.clone()),
            meta: origin,
            details: json!({"from": current.as_str(), "to": new_role.as_str(), "email": target.email, "invitations_revoked": invitations}),
        };
        audit::record_at(&mut tx, entry, now).await?;
        let change = Invalidation::default().user(&target.id);
        change.announce(&mut tx, self.store, self.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.auth_cache).await;
        Ok(to_dto(&UserRow { role: new_role, updated_at: now, ..target }))
    }

    /// Removes a member: their sessions, keys and pending invitations stop working at once, then the
    /// account is deleted.
    pub async fn remove(&self, p: &Authorized<MembersManage>, user_id: &str, origin: &Origin) -> Outcome<()> {
        if !is_uuid(user_id) {
            return Err(member_not_found());
        }
        let mut tx = self.begin_locked(p.tenant_id()).await?;
        let target = find_tenant_user(&mut tx, p.tenant_id(), user_id).await?.ok_or_else(member_not_found)?;
        if target.role == Role::Owner {
            if current_role(&mut tx, p).await? != Role::Owner {
                return Err(owner_only("remove an owner"));
            }
            if count_owners(&mut tx, p.tenant_id()).await? <= 1 {
                return Err(last_owner());
            }
        }
        let now = self.clock.now_ms();
        let sessions = revoke_user_sessions(&mut tx, &target.id, now).await?;
        let keys = revoke_user_api_keys(&mut tx, &target.id, now).await?;
        let invitations = revoke_pending_sent_by(&mut tx, &target.id, false, now).await?;
        delete_user(&mut tx, &target.id).await?;
        let entry = Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "member.removed",
            target: Some(target.id.clone()),
            meta: origin,
            details: json!({"email": target.email, "role": target.role.as_str(), "sessions_revoked": sessions.len(), "keys_revoked": keys.len(), "invitations_revoked": invitations}),
        };
        audit::record_at(&mut tx, entry, now).await?;
        let change = Invalidation::default()
            .sessions(sessions)
            .dead_keys(keys.into_iter().flat_map(|(current, previous)| std::iter::once(current).chain(previous)))
            .user(&target.id);
        change.announce(&mut tx, self.store, self.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.auth_cache).await;
        Ok(())
    }
}
