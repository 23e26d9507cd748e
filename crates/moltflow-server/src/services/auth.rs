//! Registration and password login.

use moltflow_core::clock::now_ms;
use moltflow_core::ids::new_id;
use moltflow_core::password::check_new_password;
use moltflow_core::{Email, Role};
use moltflow_store::Tx;
use moltflow_store::accounts::{TenantRow, UserRow, find_user_by_email, insert_tenant, insert_user};
use moltflow_types::{LoginRequest, RegisterRequest, TokenPair};

use crate::auth::throttle::IpRates as _;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Checks, check_name};
use crate::services::audit::{self, Actor, Entry};
use crate::services::mailing::send_link;
use crate::services::one_time::TokenKind;
use crate::services::origin::Origin;
use crate::services::sessions::{open_session, sign_in, token_pair};
use crate::state::App;

/// Longest password the service will hash: longer ones are refused before any work.
const MAX_PASSWORD_BYTES: usize = 1024;

fn email_taken() -> ApiError {
    ApiError::conflict("email_taken", "An account with this email already exists")
}

/// Validated registration input.
pub struct NewAccount {
    pub email: Email,
    pub full_name: String,
    pub tenant_name: String,
    pub password: Option<String>,
}

pub fn validate_registration(req: RegisterRequest) -> ApiResult<NewAccount> {
    let mut checks = Checks::default();
    let email =
        Email::parse(&req.email).map_err(|e| checks.fail(&["body", "email"], e.to_string(), "value_error")).ok();
    let full_name = check_name(&mut checks, &["body", "full_name"], &req.full_name, 100);
    let tenant_name = match &req.tenant_name {
        Some(t) => check_name(&mut checks, &["body", "tenant_name"], t, 100),
        None => full_name.clone(),
    };
    if let (Some(password), Some(email)) = (&req.password, &email)
        && let Err(e) = check_new_password(password, email.as_str(), &[&full_name])
    {
        checks.fail(&["body", "password"], e.to_string(), "value_error");
    }
    checks.finish()?;
    let email = email.ok_or_else(ApiError::internal)?;
    Ok(NewAccount { email, full_name, tenant_name, password: req.password })
}

/// Creates a tenant on the free plan with its owner, and signs the owner in.
pub async fn register(app: &App, req: RegisterRequest, meta: &Origin) -> ApiResult<TokenPair> {
    app.limits
        .register_ip
        .check(meta.ip, app.clock.now_ms())
        .await
        .map_err(|wait| ApiError::too_many("rate_limited", "Too many sign-ups from this address", wait))?;
    let account = validate_registration(req)?;
    ensure_email_free(app, &account.email).await?;
    let password_hash = match &account.password {
        Some(p) => Some(app.hasher.hash(p).await?),
        None => None,
    };
    let (tenant, user) = account_rows(account, password_hash, now_ms());
    let mut tx = app.store.begin().await?;
    insert_account(app, &mut tx, &tenant, &user, meta).await?;
    let opened = open_session(&mut tx, &user, "register", meta).await?;
    tx.commit().await?;
    app.mailer.wake();
    token_pair(app, &user, opened)
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
        role: Role::Owner.as_str().to_owned(),
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
/// is `409 email_taken`. The caller wakes the mailer after committing.
pub async fn insert_account(
    app: &App,
    tx: &mut Tx,
    tenant: &TenantRow,
    user: &UserRow,
    meta: &Origin,
) -> ApiResult<()> {
    insert_tenant(tx, tenant).await?;
    insert_user(tx, user).await.map_err(|e| if e.is_unique_violation() { email_taken() } else { e.into() })?;
    send_link(app, tx, TokenKind::Verify, user).await?;
    audit::record(
        tx,
        Entry {
            tenant_id: &tenant.id,
            actor: Actor::user(&user.id),
            action: "user.registered",
            target: Some(user.id.clone()),
            meta,
            details: serde_json::json!({"email": user.email, "plan_id": tenant.plan_id}),
        },
    )
    .await?;
    Ok(())
}

/// `409 email_taken` when an account with this email exists.
pub async fn ensure_email_free(app: &App, email: &Email) -> ApiResult<()> {
    let mut conn = app.store.conn().await?;
    if find_user_by_email(&mut conn, email.as_str()).await?.is_some() {
        return Err(email_taken());
    }
    Ok(())
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "Incorrect email or password")
}

/// Password login: the same answer, after the same work, for an unknown email and a wrong
/// password. The check is counted by the lockout before it runs (API.md §3), and the failure is
/// audited off the request path for both.
pub async fn login(app: &App, req: LoginRequest, meta: &Origin) -> ApiResult<TokenPair> {
    app.limits
        .login_ip
        .check(meta.ip, app.clock.now_ms())
        .await
        .map_err(|wait| ApiError::too_many("rate_limited", "Too many login attempts from this address", wait))?;
    let email = Email::parse(&req.email).ok();
    let lockout_key = match &email {
        Some(e) => e.as_str().to_owned(),
        None => req.email.trim().to_lowercase(),
    };
    let permit = app.limits.login_lockout.reserve(&lockout_key, app.clock.now_ms()).await.map_err(|wait| {
        ApiError::too_many("login_locked", "Too many failed logins for this account; try again later", wait)
    })?;
    let found = match &email {
        Some(email) => async { find_user_by_email(&mut app.store.conn().await?, email.as_str()).await }.await,
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
    let verified = app.hasher.verify(password, stored).await && !password.is_empty();
    let user = match user {
        Some(user) if verified => user,
        known => {
            permit.failed();
            queue_failed_login(app, known.as_ref(), meta).await;
            return Err(invalid_credentials());
        }
    };
    permit.passed().await;
    let mut tx = app.store.begin().await?;
    let opened = sign_in(&mut tx, &user, "password", meta).await?;
    tx.commit().await?;
    token_pair(app, &user, opened)
}

/// A failed login on an existing account goes to its tenant's audit log, written by the audit
/// writer. An unknown email queues the same job with nothing to write, so both cost the same here.
async fn queue_failed_login(app: &App, known: Option<&UserRow>, meta: &Origin) {
    let row = audit::row(Entry {
        tenant_id: known.map_or("", |u| u.tenant_id.as_str()),
        actor: Actor { kind: "anonymous", id: None },
        action: "login.failed",
        target: known.map(|u| u.id.clone()),
        meta,
        details: serde_json::json!({"reason": "invalid_credentials"}),
    });
    app.audit_queue.push(row, known.is_some()).await;
}
