//! Invitations: an owner or admin invites an address into the tenant with a role; the mailed
//! link creates the account there (API.md §8). Only owners invite owners and admins, only
//! verified users invite at all, a key invites into no role holding scopes the key lacks, and the
//! caps on mails per address and invitations per tenant are counted in the database; an address
//! that has an account anywhere cannot be invited (a user belongs to exactly one tenant).

use moltflow_core::clock::{Clock, DAY_MS, HOUR_MS, rfc3339};
use moltflow_core::ids::{is_uuid, new_id};
use moltflow_core::password::check_new_password;
use moltflow_core::secret::{new_token, sha256_hex};
use moltflow_core::{Email, Role};
use moltflow_store::accounts::{UserRow, find_tenant, find_tenant_user, find_user_by_email, insert_user, lock_tenant};
use moltflow_store::invitations::{
    InvitationRow, accept_invitation, count_tenant_invitations_since, find_invitation, find_invitation_by_token,
    insert_invitation, list_invitations, lock_invited_address, revoke_invitation, revoke_pending_for_email,
};
use moltflow_store::mail::count_mail_of_kind_since;
use moltflow_store::{Store, Tx};
use moltflow_types::{AcceptInvitationRequest, Invitation, InviteRequest, TokenPair};
use serde_json::json;

use crate::auth::password::PasswordHasher;
use crate::mail::{MailKind, Mailer};
use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Failure, Issues, Outcome, check_name};
use crate::services::mailbox_proof::{self, Proof};
use crate::services::origin::Origin;
use crate::services::principal::guards::{MembersManage, MembersRead};
use crate::services::principal::{Authorized, Principal};
use crate::services::sessions::{Tokens, open_session};
use crate::services::standing::{current_caller, require_verified};

/// What the invitation use cases work with.
pub struct Invitations<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    /// The password an invited person may set on accepting.
    pub hasher: &'a PasswordHasher,
    pub mailer: &'a Mailer,
    /// Accepting signs the new member in.
    pub tokens: Tokens<'a>,
}

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

/// An invitation as clients see it; its status as of `now`.
pub fn to_dto(row: &InvitationRow, now: i64) -> Invitation {
    Invitation {
        id: row.id.clone(),
        email: row.email.clone(),
        role: row.role,
        status: status_of(row, now).to_owned(),
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

/// The caps of API.md §8, counted in the database so that they hold across nodes: invitation
/// mails to one address in the last hour (from any tenant, in the outbox, which keeps its rows
/// when a tenant is erased) and invitations of one tenant in the last 24 hours.
async fn within_invitation_caps(tx: &mut Tx, tenant_id: &str, email: &str, now: i64) -> Outcome<()> {
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

/// `rate_limited`, retry when the oldest counted row leaves the window.
fn cap_reached(detail: &str, oldest: Option<i64>, window: i64, now: i64) -> Failure {
    let wait_ms = oldest.map_or(window, |at| at + window - now).max(1_000);
    Failure::limited("rate_limited", detail, (wait_ms as u64).div_ceil(1_000))
}

fn invalid_invitation() -> Failure {
    Failure::rejected("invalid_token", "This invitation is invalid, expired, revoked or already used")
}

/// Whether the invitation's sender is still in the tenant with a role that may grant the invited
/// one (demotions and removals revoke what they can no longer grant; this catches anything that
/// slipped past, such as a role changed outside the API).
async fn inviter_may_still_grant(tx: &mut Tx, invitation: &InvitationRow) -> Outcome<bool> {
    let Some(inviter_id) = invitation.invited_by.as_deref() else { return Ok(false) };
    let Some(inviter) = find_tenant_user(tx, &invitation.tenant_id, inviter_id).await? else { return Ok(false) };
    let inviter_role = inviter.role;
    Ok(match invitation.role {
        Role::Member => inviter_role >= Role::Admin,
        Role::Admin | Role::Owner => inviter_role == Role::Owner,
    })
}

impl Invitations<'_> {
    pub async fn invite(
        &self,
        p: &Authorized<MembersManage>,
        req: InviteRequest,
        origin: &Origin,
    ) -> Outcome<Invitation> {
        let mut issues = Issues::default();
        let email = Email::parse(&req.email).map_err(|e| issues.fail("email", e.to_string(), "value_error")).ok();
        let role = match req.role.as_deref().unwrap_or("member").parse::<Role>() {
            Ok(r) => Some(r),
            Err(_) => {
                issues.fail("role", "Input should be 'owner', 'admin' or 'member'", "enum");
                None
            }
        };
        issues.finish()?;
        let (Some(email), Some(role)) = (email, role) else {
            return Err(Failure::unexpected(anyhow::anyhow!("a valid invitation without an email or a role")));
        };
        if role >= Role::Admin && p.role != Role::Owner {
            return Err(Failure::forbidden("owner_required", "Only an owner can invite admins and owners"));
        }
        p.require_within(role.scopes(), "This role holds scopes the calling key does not")?;
        let now = self.clock.now_ms();
        let raw = new_token();
        let row = InvitationRow {
            id: new_id(),
            tenant_id: p.tenant_id().to_owned(),
            email: email.as_str().to_owned(),
            role,
            token_hash: sha256_hex(&raw),
            invited_by: Some(p.user.id.clone()),
            created_at: now,
            expires_at: now + INVITATION_LIFETIME_MS,
            accepted_at: None,
            revoked_at: None,
        };
        let mut tx = self.store.begin().await?;
        // The tenant's lock, then the address's: the caps below count rows in this transaction, and
        // concurrent invitations (on any node) wait for each other's commit before counting.
        lock_tenant(&mut tx, p.tenant_id()).await?;
        lock_invited_address(&mut tx, email.as_str()).await?;
        // Only a verified address sends mail from our domain in the tenant's name (a key invites
        // as its creator).
        let inviter = current_caller(&mut tx, p, now).await?;
        require_verified(&inviter, "inviting anyone")?;
        within_invitation_caps(&mut tx, p.tenant_id(), email.as_str(), now).await?;
        if find_user_by_email(&mut tx, email.as_str()).await?.is_some() {
            return Err(Failure::conflict("email_taken", "An account with this email already exists"));
        }
        let tenant = find_tenant(&mut tx, p.tenant_id())
            .await?
            .ok_or_else(|| Failure::unexpected(anyhow::anyhow!("the caller's tenant is gone")))?;
        revoke_pending_for_email(&mut tx, p.tenant_id(), email.as_str(), now).await?;
        insert_invitation(&mut tx, &row).await?;
        let link = self.mailer.link("/accept-invitation", &raw);
        let vars = [
            ("tenant", tenant.name.as_str()),
            ("inviter", p.user.full_name.as_str()),
            ("role", role.as_str()),
            ("email", email.as_str()),
            ("name", email.as_str()),
            ("link", link.as_str()),
            ("expires_in", "7 days"),
        ];
        self.mailer.enqueue(&mut tx, MailKind::Invitation, email.as_str(), &vars, now).await?;
        let entry = Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "member.invited",
            target: Some(row.id.clone()),
            meta: origin,
            details: json!({"email": row.email, "role": row.role.as_str()}),
        };
        audit::record_at(&mut tx, entry, now).await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(to_dto(&row, now))
    }

    /// The tenant's invitations, newest first, with their status.
    pub async fn list(&self, p: &Authorized<MembersRead>) -> Outcome<Vec<Invitation>> {
        let now = self.clock.now_ms();
        let mut conn = self.store.conn().await?;
        Ok(list_invitations(&mut conn, p.tenant_id()).await?.iter().map(|row| to_dto(row, now)).collect())
    }

    /// Idempotent: revoking an accepted or revoked invitation answers the same and changes nothing.
    pub async fn revoke(&self, p: &Authorized<MembersManage>, id: &str, origin: &Origin) -> Outcome<()> {
        if !is_uuid(id) {
            return Err(Failure::NotFound("Invitation"));
        }
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let row = find_invitation(&mut tx, p.tenant_id(), id).await?.ok_or(Failure::NotFound("Invitation"))?;
        if revoke_invitation(&mut tx, &row.id, now).await? {
            let entry = Entry {
                tenant_id: p.tenant_id(),
                actor: actor(p),
                action: "invitation.revoked",
                target: Some(row.id.clone()),
                meta: origin,
                details: json!({"email": row.email}),
            };
            audit::record_at(&mut tx, entry, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The invited address has an account already, so nobody joins. An unverified one was
    /// registered without proof of the mailbox, which this invitation now gives: everything set up
    /// in it is taken back (API.md §3), committed although the answer is a conflict.
    async fn address_taken(&self, mut tx: Tx, existing: &UserRow, origin: &Origin, now: i64) -> Failure {
        if existing.email_verified {
            return Failure::conflict("email_taken", "An account with this email already exists");
        }
        let secured = async {
            let Some(taken) =
                mailbox_proof::prove(&mut tx, self.mailer, existing, Proof::Invitation, origin, now).await?
            else {
                return Ok(());
            };
            let change = taken.invalidation(&existing.id);
            change.announce(&mut tx, self.store, self.tokens.auth_cache).await?;
            tx.commit().await?;
            change.apply(self.tokens.auth_cache).await;
            self.mailer.wake();
            Ok::<(), Failure>(())
        };
        match secured.await {
            Ok(()) => Failure::conflict(
                "email_taken",
                "An account with this email already exists. It had been registered without proof of this \
                 mailbox, so everything set up in it before was taken back; sign in to it with an emailed link. \
                 To join this workspace instead, delete that account, then open the invitation again",
            ),
            Err(failure) => failure,
        }
    }

    /// Creates the invited account in the inviting tenant and signs it in. The address is verified:
    /// the link was mailed to it.
    pub async fn accept(&self, req: AcceptInvitationRequest, origin: &Origin) -> Outcome<TokenPair> {
        let raw = req.token.trim();
        if raw.is_empty() || raw.len() > 128 {
            return Err(invalid_invitation());
        }
        let invitation = {
            let mut conn = self.store.conn().await?;
            find_invitation_by_token(&mut conn, &sha256_hex(raw)).await?
        };
        let now = self.clock.now_ms();
        let invitation = invitation.filter(|i| status_of(i, now) == "pending").ok_or_else(invalid_invitation)?;
        let mut issues = Issues::default();
        let full_name = check_name(&mut issues, "full_name", &req.full_name, 100);
        if let Some(password) = &req.password
            && let Err(e) = check_new_password(password, &invitation.email, &[&full_name])
        {
            issues.fail("password", e.to_string(), "value_error");
        }
        issues.finish()?;
        let password_hash = match &req.password {
            Some(p) => Some(self.hasher.hash(p).await?),
            None => None,
        };
        let user = UserRow {
            id: new_id(),
            tenant_id: invitation.tenant_id.clone(),
            email: invitation.email.clone(),
            full_name,
            role: invitation.role,
            password_hash,
            email_verified: true,
            timezone: "UTC".to_owned(),
            locale: "en".to_owned(),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.begin().await?;
        if let Some(existing) = find_user_by_email(&mut tx, &invitation.email).await? {
            return Err(self.address_taken(tx, &existing, origin, now).await);
        }
        if !accept_invitation(&mut tx, &invitation.id, now).await?
            || !inviter_may_still_grant(&mut tx, &invitation).await?
        {
            return Err(invalid_invitation());
        }
        insert_user(&mut tx, &user).await.map_err(|e| {
            if e.is_unique_violation() {
                Failure::conflict("email_taken", "An account with this email already exists")
            } else {
                e.into()
            }
        })?;
        let opened = open_session(&mut tx, &user, "invitation", origin, now).await?;
        let entry = Entry {
            tenant_id: &user.tenant_id,
            actor: Actor::user(&user.id),
            action: "member.joined",
            target: Some(user.id.clone()),
            meta: origin,
            details: json!({"email": user.email, "role": user.role.as_str(), "invitation_id": invitation.id}),
        };
        audit::record_at(&mut tx, entry, now).await?;
        tx.commit().await?;
        self.tokens.pair(&user, opened)
    }
}
