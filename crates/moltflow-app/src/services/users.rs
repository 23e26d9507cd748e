//! The caller's own account: profile, password, deletion (API.md §3 `set-password`, §4).

use moltflow_core::Role;
use moltflow_core::clock::{Clock, MINUTE_MS, rfc3339};
use moltflow_core::locale::parse_locale;
use moltflow_core::password::check_new_password;
use moltflow_store::Store;
use moltflow_store::accounts::{
    UserRow, count_tenant_users, delete_tenant, delete_user, find_user, lock_tenant, set_user_password,
    update_user_profile,
};
use moltflow_store::invitations::revoke_pending_sent_by;
use moltflow_store::mail::delete_mail_to;
use moltflow_store::sessions::{revoke_other_sessions, revoke_user_sessions};
use moltflow_store::tokens::use_user_tokens;
use moltflow_types::{DeleteAccountRequest, SetPasswordRequest, UpdateProfileRequest, UserProfile};

use crate::auth::cache::AuthCache;
use crate::auth::lockout::LoginLockout;
use crate::auth::password::PasswordHasher;
use crate::auth::revocation::Invalidation;
use crate::services::audit::{self, Actor, Entry};
use crate::services::billing::{Billing, live_provider_subscription};
use crate::services::failure::{Failure, Issues, Outcome, check_name};
use crate::services::one_time::TokenKind;
use crate::services::origin::Origin;
use crate::services::principal::guards::{AccountManage, AccountRead};
use crate::services::principal::{Authorized, Credential, Principal, UserSession};

/// What the caller's-own-account use cases work with.
pub struct Users<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    pub hasher: &'a PasswordHasher,
    /// Counts every check of a current password, like a login's.
    pub lockout: &'a LoginLockout,
    pub auth_cache: &'a AuthCache,
    /// Erasing a tenant ends its paid subscription at the provider first.
    pub billing: Billing<'a>,
}

/// A passwordless account deletes itself from a session a magic link opened this recently.
pub const FRESH_MAGIC_LINK_MS: i64 = 10 * MINUTE_MS;

pub fn profile(user: &UserRow) -> UserProfile {
    UserProfile {
        id: user.id.clone(),
        email: user.email.clone(),
        full_name: user.full_name.clone(),
        role: user.role,
        tenant_id: user.tenant_id.clone(),
        email_verified: user.email_verified,
        has_password: user.password_hash.is_some(),
        timezone: user.timezone.clone(),
        locale: user.locale.clone(),
        created_at: rfc3339(user.created_at),
        updated_at: rfc3339(user.updated_at),
    }
}

fn invalid_current_password() -> Failure {
    Failure::rejected("invalid_current_password", "The current password is not correct")
}

impl Users<'_> {
    /// The caller's user as stored now (the principal's copy may be up to a second old).
    async fn current_user(&self, principal: &Principal) -> Outcome<UserRow> {
        let mut conn = self.store.conn().await?;
        find_user(&mut conn, &principal.user.id).await?.ok_or_else(Failure::not_authenticated)
    }

    /// `GET /users/me`.
    pub async fn get_me(&self, principal: &Authorized<AccountRead>) -> Outcome<UserProfile> {
        Ok(profile(&self.current_user(principal).await?))
    }

    /// `PATCH /users/me`: any of `full_name`, `timezone` (IANA), `locale` (BCP 47).
    pub async fn update_me(
        &self,
        principal: &Authorized<AccountManage>,
        req: UpdateProfileRequest,
    ) -> Outcome<UserProfile> {
        let mut issues = Issues::default();
        let full_name = req.full_name.as_deref().map(|n| check_name(&mut issues, "full_name", n, 100));
        let timezone = req.timezone.as_deref().and_then(|tz| match tz.trim().parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz.name().to_owned()),
            Err(_) => {
                issues.fail("timezone", "value is not an IANA time zone name (e.g. Europe/Lisbon)", "value_error");
                None
            }
        });
        let locale = req
            .locale
            .as_deref()
            .and_then(|l| parse_locale(l).map_err(|e| issues.fail("locale", e.to_string(), "value_error")).ok());
        issues.finish()?;
        let mut tx = self.store.begin().await?;
        let user = find_user(&mut tx, &principal.user.id).await?.ok_or_else(Failure::not_authenticated)?;
        let now = self.clock.now_ms();
        let updated = UserRow {
            full_name: full_name.unwrap_or(user.full_name),
            timezone: timezone.unwrap_or(user.timezone),
            locale: locale.unwrap_or(user.locale),
            updated_at: now,
            ..user
        };
        update_user_profile(&mut tx, &updated.id, &updated.full_name, &updated.timezone, &updated.locale, now).await?;
        let change = Invalidation::default().user(&updated.id);
        change.announce(&mut tx, self.store, self.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.auth_cache).await;
        Ok(profile(&updated))
    }

    /// Checks `current_password` against the stored hash: `422` when missing, `400` when wrong; the
    /// login lockout counts every check before it runs (a stolen access token must not become a
    /// guessing oracle).
    async fn check_current_password(&self, user: &UserRow, stored: &str, given: Option<&str>) -> Outcome<()> {
        let Some(given) = given else {
            return Err(Failure::invalid("current_password", "Field required: this account has a password", "missing"));
        };
        let permit = self.lockout.reserve(&user.email, self.clock.now_ms()).await.map_err(|wait| {
            Failure::limited("login_locked", "Too many wrong passwords for this account; try again later", wait)
        })?;
        if given.len() > 1024 || !self.hasher.verify(given, Some(stored)).await {
            permit.failed();
            return Err(invalid_current_password());
        }
        permit.passed().await;
        Ok(())
    }

    /// `POST /auth/set-password`: a first password, or a change proven with `current_password`.
    /// A change ends the user's other sessions.
    pub async fn set_password(&self, principal: &UserSession, req: SetPasswordRequest, origin: &Origin) -> Outcome<()> {
        let session_id = principal.require_user()?.to_owned();
        let user = self.current_user(principal).await?;
        if let Some(stored) = &user.password_hash {
            self.check_current_password(&user, stored, req.current_password.as_deref()).await?;
        }
        check_new_password(&req.password, &user.email, &[&user.full_name])
            .map_err(|e| Failure::invalid("password", e.to_string(), "value_error"))?;
        let hash = self.hasher.hash(&req.password).await?;
        let now = self.clock.now_ms();
        let changed = user.password_hash.is_some();
        let mut tx = self.store.begin().await?;
        set_user_password(&mut tx, &user.id, &hash, now).await?;
        let revoked =
            if changed { revoke_other_sessions(&mut tx, &user.id, &session_id, now).await? } else { Vec::new() };
        // A reset link mailed before this change must not undo it.
        use_user_tokens(&mut tx, &user.id, TokenKind::Reset.as_str(), now).await?;
        let entry = Entry {
            tenant_id: &user.tenant_id,
            actor: Actor::user(&user.id),
            action: "password.set",
            target: Some(user.id.clone()),
            meta: origin,
            details: serde_json::json!({"first_password": !changed, "sessions_revoked": revoked.len()}),
        };
        audit::record_at(&mut tx, entry, now).await?;
        let change = Invalidation::default().sessions(revoked).user(&user.id);
        change.announce(&mut tx, self.store, self.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.auth_cache).await;
        Ok(())
    }

    /// `DELETE /users/me`: erases the account, and the tenant with it when the user was its only
    /// member (after ending its subscription at the billing provider); the last owner of a tenant
    /// with other members gets `409 last_owner`.
    pub async fn delete_me(&self, principal: &UserSession, req: DeleteAccountRequest, origin: &Origin) -> Outcome<()> {
        principal.require_user()?;
        let user = self.current_user(principal).await?;
        match (&user.password_hash, &principal.credential) {
            (Some(stored), _) => self.check_current_password(&user, stored, req.current_password.as_deref()).await?,
            (None, Credential::Session { method, created_at, .. })
                if method == "magic_link" && self.clock.now_ms() - created_at < FRESH_MAGIC_LINK_MS => {}
            (None, _) => {
                return Err(Failure::forbidden(
                    "reauthentication_required",
                    "Sign in with a magic link (less than 10 minutes ago) to delete this passwordless account",
                ));
            }
        }
        // A sole member's deletion erases the tenant: its paid subscription is ended at the provider
        // first, outside the transaction (a slow provider must not hold the database); if that fails
        // nothing is erased.
        let sole_member = {
            let mut conn = self.store.conn().await?;
            count_tenant_users(&mut conn, &user.tenant_id).await?.0 <= 1
        };
        if sole_member {
            self.billing.end_subscription_before_erasure(&user.tenant_id).await?;
        }
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        // Owners are counted under the tenant's lock, and the role read after it: two owners leaving
        // (or demoting each other) at once must not leave the tenant without one (API.md §8).
        lock_tenant(&mut tx, &user.tenant_id).await?;
        let user = find_user(&mut tx, &user.id).await?.ok_or_else(Failure::not_authenticated)?;
        let (members, owners) = count_tenant_users(&mut tx, &user.tenant_id).await?;
        if user.role == Role::Owner && owners <= 1 && members > 1 {
            return Err(Failure::conflict(
                "last_owner",
                "You are the last owner of a tenant with other members: make another member owner first",
            ));
        }
        if members <= 1 && !sole_member && live_provider_subscription(&mut tx, &user.tenant_id).await?.is_some() {
            // The other members left while this request ran: the subscription was not ended.
            return Err(Failure::conflict("members_changed", "The tenant's members changed meanwhile; please retry"));
        }
        let sessions = revoke_user_sessions(&mut tx, &user.id, now).await?;
        delete_mail_to(&mut tx, &user.email).await?;
        let tenant_erased = members <= 1;
        if tenant_erased {
            delete_tenant(&mut tx, &user.tenant_id).await?;
        } else {
            // Nobody joins through the invitations of an account that no longer exists.
            revoke_pending_sent_by(&mut tx, &user.id, false, now).await?;
            delete_user(&mut tx, &user.id).await?;
            let entry = Entry {
                tenant_id: &user.tenant_id,
                actor: Actor::user(&user.id),
                action: "account.deleted",
                target: Some(user.id.clone()),
                meta: origin,
                details: serde_json::json!({"email": user.email, "role": user.role.as_str()}),
            };
            audit::record_at(&mut tx, entry, now).await?;
        }
        let change = Invalidation::default().sessions(sessions).user(&user.id);
        change.announce(&mut tx, self.store, self.auth_cache).await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, tenant_erased, "account deleted");
        change.apply(self.auth_cache).await;
        Ok(())
    }
}
