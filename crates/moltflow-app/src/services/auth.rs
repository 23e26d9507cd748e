//! Registration and password login.

use moltflow_core::clock::Clock;
use moltflow_core::ids::new_id;
use moltflow_core::password::check_new_password;
use moltflow_core::{Email, Role};
use moltflow_store::accounts::{TenantRow, UserRow, find_user_by_email, insert_tenant, insert_user};
use moltflow_store::{AsDbConn, Store, Tx};
use moltflow_types::{LoginRequest, RegisterRequest, TokenPair};

use crate::auth::lockout::LoginLockout;
use crate::auth::password::PasswordHasher;
use crate::mail::Mailer;
use crate::services::audit::{self, Actor, Entry};
use crate::services::audit_queue::AuditQueue;
use crate::services::failure::{Failure, Issues, Outcome, check_name};
use crate::services::mailing::send_link;
use crate::services::one_time::TokenKind;
use crate::services::origin::Origin;
use crate::services::sessions::{Tokens, open_session, sign_in};

/// What registration and login work with.
pub struct Auth<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    pub hasher: &'a PasswordHasher,
    /// The verification mail of a new account.
    pub mailer: &'a Mailer,
    pub tokens: Tokens<'a>,
    /// Counts every password check of an account before it runs.
    pub lockout: &'a LoginLockout,
    /// Failed logins are audited off the request path.
    pub audit_queue: &'a AuditQueue,
}

/// Longest password the service will hash: longer ones are refused before any work.
const MAX_PASSWORD_BYTES: usize = 1024;

fn email_taken() -> Failure {
    Failure::conflict("email_taken", "An account with this email already exists")
}

/// Validated registration input.
pub struct NewAccount {
    pub email: Email,
    pub full_name: String,
    pub tenant_name: String,
    pub password: Option<String>,
}

pub fn validate_registration(req: RegisterRequest) -> Outcome<NewAccount> {
    let mut issues = Issues::default();
    let email = Email::parse(&req.email).map_err(|e| issues.fail("email", e.to_string(), "value_error")).ok();
    let full_name = check_name(&mut issues, "full_name", &req.full_name, 100);
    let tenant_name = match &req.tenant_name {
        Some(t) => check_name(&mut issues, "tenant_name", t, 100),
        None => full_name.clone(),
    };
    if let (Some(password), Some(email)) = (&req.password, &email)
        && let Err(e) = check_new_password(password, email.as_str(), &[&full_name])
    {
        issues.fail("password", e.to_string(), "value_error");
    }
    issues.finish()?;
    let email = email.ok_or_else(|| Failure::unexpected(anyhow::anyhow!("a valid registration without an email")))?;
    Ok(NewAccount { email, full_name, tenant_name, password: req.password })
}

/// The rows of a new tenant on the free plan and its owner.
pub fn account_rows(account: NewAccount, password_hash: Option<String>, now: i64) -> (TenantRow, UserRow) {
    let tenant = TenantRow {
        id: new_id(),
        name: account.tenant_name,
        plan_id: moltflow_core::plan::DEFAULT_PLAN.to_owned(),
        created_at: now,
        updated_at: now,
    };
    let user = UserRow {
        id: new_id(),
        tenant_id: tenant.id.clone(),
        email: account.email.into_string(),
        full_name: account.full_name,
        role: Role::Owner,
        password_hash,
        email_verified: false,
        timezone: "UTC".to_owned(),
        locale: "en".to_owned(),
        created_at: now,
        updated_at: now,
    };
    (tenant, user)
}

/// Inserts a new tenant and its owner, audited, and queues the verification mail; a taken email
/// is `email_taken`. The caller wakes the mailer after committing.
pub async fn insert_account(
    tx: &mut Tx,
    mailer: &Mailer,
    tenant: &TenantRow,
    user: &UserRow,
    origin: &Origin,
    now: i64,
) -> Outcome<()> {
    insert_tenant(tx, tenant).await?;
    insert_user(tx, user).await.map_err(|e| if e.is_unique_violation() { email_taken() } else { e.into() })?;
    send_link(mailer, tx, TokenKind::Verify, user, now).await?;
    let entry = Entry {
        tenant_id: &tenant.id,
        actor: Actor::user(&user.id),
        action: "user.registered",
        target: Some(user.id.clone()),
        meta: origin,
        details: serde_json::json!({"email": user.email, "plan_id": tenant.plan_id}),
    };
    audit::record_at(tx, entry, now).await?;
    Ok(())
}

/// `email_taken` when an account with this email exists.
pub async fn ensure_email_free(c: &mut impl AsDbConn, email: &Email) -> Outcome<()> {
    if find_user_by_email(c, email.as_str()).await?.is_some() {
        return Err(email_taken());
    }
    Ok(())
}

fn invalid_credentials() -> Failure {
    Failure::unauthenticated("invalid_credentials", "Incorrect email or password")
}

impl Auth<'_> {
    /// Creates a tenant on the free plan with its owner, and signs the owner in. (The per-address
    /// throttle of sign-ups is the way in's: `routes::auth`.)
    pub async fn register(&self, req: RegisterRequest, origin: &Origin) -> Outcome<TokenPair> {
        let account = validate_registration(req)?;
        ensure_email_free(&mut self.store.conn().await?, &account.email).await?;
        let password_hash = match &account.password {
            Some(p) => Some(self.hasher.hash(p).await?),
            None => None,
        };
        let now = self.clock.now_ms();
        let (tenant, user) = account_rows(account, password_hash, now);
        let mut tx = self.store.begin().await?;
        insert_account(&mut tx, self.mailer, &tenant, &user, origin, now).await?;
        let opened = open_session(&mut tx, &user, "register", origin, now).await?;
        tx.commit().await?;
        self.mailer.wake();
        self.tokens.pair(&user, opened)
    }

    /// Password login: the same answer, after the same work, for an unknown email and a wrong
    /// password. The check is counted by the lockout before it runs (API.md §3), and the failure
    /// is audited off the request path for both.
    pub async fn login(&self, req: LoginRequest, origin: &Origin) -> Outcome<TokenPair> {
        let email = Email::parse(&req.email).ok();
        let lockout_key = match &email {
            Some(e) => e.as_str().to_owned(),
            None => req.email.trim().to_lowercase(),
        };
        let now = self.clock.now_ms();
        let permit = self.lockout.reserve(&lockout_key, now).await.map_err(|wait| {
            Failure::limited("login_locked", "Too many failed logins for this account; try again later", wait)
        })?;
        let found = match &email {
            Some(email) => async { find_user_by_email(&mut self.store.conn().await?, email.as_str()).await }.await,
            None => Ok(None),
        };
        let user = match found {
            Ok(user) => user,
            Err(e) => {
                permit.unused().await;
                return Err(e.into());
            }
        };
        let password = if req.password.len() > MAX_PASSWORD_BYTES { "" } else { req.password.as_str() };
        let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let verified = self.hasher.verify(password, stored).await && !password.is_empty();
        let user = match user {
            Some(user) if verified => user,
            known => {
                permit.failed();
                self.queue_failed_login(known.as_ref(), origin, now).await;
                return Err(invalid_credentials());
            }
        };
        permit.passed().await;
        let mut tx = self.store.begin().await?;
        let opened = sign_in(&mut tx, &user, "password", origin, now).await?;
        tx.commit().await?;
        self.tokens.pair(&user, opened)
    }

    /// A failed login on an existing account goes to its tenant's audit log, written by the
    /// audit writer. An unknown email queues the same job with nothing to write, so both cost
    /// the same here.
    async fn queue_failed_login(&self, known: Option<&UserRow>, origin: &Origin, now: i64) {
        let entry = Entry {
            tenant_id: known.map_or("", |u| u.tenant_id.as_str()),
            actor: Actor { kind: "anonymous", id: None },
            action: "login.failed",
            target: known.map(|u| u.id.clone()),
            meta: origin,
            details: serde_json::json!({"reason": "invalid_credentials"}),
        };
        self.audit_queue.push(audit::row_at(entry, now), known.is_some()).await;
    }
}
