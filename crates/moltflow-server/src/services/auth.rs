//! Registration and password login.

use moltflow_core::clock::now_ms;
use moltflow_core::ids::new_id;
use moltflow_core::password::check_new_password;
use moltflow_core::{Email, Role};
use moltflow_store::accounts::{TenantRow, UserRow, find_user_by_email, insert_tenant, insert_user};
use moltflow_store::{Tx, is_unique_violation};
use moltflow_types::{LoginRequest, RegisterRequest, TokenPair};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Checks, ClientMeta, check_name};
use crate::services::audit::{self, Actor, Entry};
use crate::services::mailing::send_link;
use crate::services::one_time::TokenKind;
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
pub async fn register(app: &App, req: RegisterRequest, meta: &ClientMeta) -> ApiResult<TokenPair> {
    app.limits
        .register_ip
        .check(meta.ip)
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
    meta: &ClientMeta,
) -> ApiResult<()> {
    insert_tenant(tx, tenant).await?;
    insert_user(tx, user).await.map_err(|e| if is_unique_violation(&e) { email_taken() } else { e.into() })?;
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

/// Password login: the same answer, after the same work, for an unknown email and a wrong password.
pub async fn login(app: &App, req: LoginRequest, meta: &ClientMeta) -> ApiResult<TokenPair> {
    app.limits
        .login_ip
        .check(meta.ip)
        .map_err(|wait| ApiError::too_many("rate_limited", "Too many login attempts from this address", wait))?;
    let lockout_key = req.email.trim().to_lowercase();
    app.limits.login_lockout.check(&lockout_key).map_err(|wait| {
        ApiError::too_many("login_locked", "Too many failed logins for this account; try again later", wait)
    })?;
    let user = match Email::parse(&req.email) {
        Ok(email) => {
            let mut conn = app.store.conn().await?;
            find_user_by_email(&mut conn, email.as_str()).await?
        }
        Err(_) => None,
    };
    let password = if req.password.len() > MAX_PASSWORD_BYTES { "" } else { req.password.as_str() };
    let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let verified = app.hasher.verify(password, stored).await && !password.is_empty();
    let user = match user {
        Some(user) if verified => user,
        known => {
            app.limits.login_lockout.record_failure(&lockout_key);
            record_failed_login(app, known, meta).await?;
            return Err(invalid_credentials());
        }
    };
    app.limits.login_lockout.clear(&lockout_key);
    let mut tx = app.store.begin().await?;
    let opened = sign_in(&mut tx, &user, "password", meta).await?;
    tx.commit().await?;
    token_pair(app, &user, opened)
}

/// A failed login on an existing account goes to its tenant's audit log.
async fn record_failed_login(app: &App, known: Option<UserRow>, meta: &ClientMeta) -> ApiResult<()> {
    let Some(known) = known else { return Ok(()) };
    let mut tx = app.store.begin().await?;
    audit::record(
        &mut tx,
        Entry {
            tenant_id: &known.tenant_id,
            actor: Actor { kind: "anonymous", id: None },
            action: "login.failed",
            target: Some(known.id.clone()),
            meta,
            details: serde_json::json!({"reason": "invalid_credentials"}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
