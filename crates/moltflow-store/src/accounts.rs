//! Tenants and users.

use moltflow_core::Role;
use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub plan_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub full_name: String,
    /// Decoded as the row is read: a role no variant names is a decode error.
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub password_hash: Option<String>,
    pub email_verified: bool,
    pub timezone: String,
    pub locale: String,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! user_columns {
    () => {
        "id, tenant_id, email, full_name, role, password_hash, email_verified, timezone, locale, created_at, updated_at"
    };
}

#[instrument(skip_all)]
pub async fn insert_tenant(c: &mut impl AsDbConn, t: &TenantRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO tenants (id, name, plan_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&t.id).bind(&t.name).bind(&t.plan_id).bind(t.created_at).bind(t.updated_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn find_tenant(c: &mut impl AsDbConn, id: &str) -> Result<Option<TenantRow>> {
    on_conn!(c, c => sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, plan_id, created_at, updated_at FROM tenants WHERE id = $1")
        .bind(id).fetch_optional(c).await)
}

#[instrument(skip_all)]
pub async fn insert_user(c: &mut impl AsDbConn, u: &UserRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO users (id, tenant_id, email, full_name, role, password_hash, email_verified, \
         timezone, locale, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(&u.id).bind(&u.tenant_id).bind(&u.email).bind(&u.full_name).bind(u.role.as_str())
        .bind(&u.password_hash).bind(u.email_verified).bind(&u.timezone).bind(&u.locale)
        .bind(u.created_at).bind(u.updated_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn find_user(c: &mut impl AsDbConn, id: &str) -> Result<Option<UserRow>> {
    const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
    on_conn!(c, c => sqlx::query_as::<_, UserRow>(SQL).bind(id).fetch_optional(c).await)
}

#[instrument(skip_all)]
pub async fn find_user_by_email(c: &mut impl AsDbConn, email: &str) -> Result<Option<UserRow>> {
    const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
    on_conn!(c, c => sqlx::query_as::<_, UserRow>(SQL).bind(email).fetch_optional(c).await)
}

/// Users of a tenant, oldest first.
#[instrument(skip_all)]
pub async fn list_tenant_users(c: &mut impl AsDbConn, tenant_id: &str) -> Result<Vec<UserRow>> {
    const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE tenant_id = $1 ORDER BY created_at, id");
    on_conn!(c, c => sqlx::query_as::<_, UserRow>(SQL).bind(tenant_id).fetch_all(c).await)
}

/// A user of a tenant (another tenant's id finds nothing).
#[instrument(skip_all)]
pub async fn find_tenant_user(c: &mut impl AsDbConn, tenant_id: &str, user_id: &str) -> Result<Option<UserRow>> {
    const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE tenant_id = $1 AND id = $2");
    on_conn!(c, c => sqlx::query_as::<_, UserRow>(SQL).bind(tenant_id).bind(user_id).fetch_optional(c).await)
}

/// How many owners a tenant has.
#[instrument(skip_all)]
pub async fn count_owners(c: &mut impl AsDbConn, tenant_id: &str) -> Result<i64> {
    on_conn!(c, c => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND role = 'owner'")
        .bind(tenant_id).fetch_one(c).await)
}

#[instrument(skip_all)]
pub async fn update_user_role(c: &mut impl AsDbConn, user_id: &str, role: Role, at: i64) -> Result<()> {
    on_conn!(c, c => sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id).bind(role.as_str()).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Takes the user's row lock until the transaction ends (PostgreSQL; SQLite's write transaction
/// already holds the database), so that concurrent mail requests for one account count in turn.
#[instrument(skip_all)]
pub async fn lock_user(c: &mut impl AsDbConn, id: &str) -> Result<bool> {
    let done = on_conn!(c, c => sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Takes the tenant's row lock until the transaction ends (PostgreSQL; SQLite's write transaction
/// already holds the database), so that changes that count the tenant's owners run one at a time
/// and each counts what the one before it committed.
#[instrument(skip_all)]
pub async fn lock_tenant(c: &mut impl AsDbConn, id: &str) -> Result<bool> {
    let done = on_conn!(c, c => sqlx::query("UPDATE tenants SET updated_at = updated_at WHERE id = $1")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

#[instrument(skip_all)]
pub async fn set_user_password(c: &mut impl AsDbConn, id: &str, password_hash: &str, at: i64) -> Result<()> {
    on_conn!(c, c => sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(id).bind(password_hash).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Removes the account's password: it signs in by mailed links until its owner sets a new one.
#[instrument(skip_all)]
pub async fn clear_user_password(c: &mut impl AsDbConn, id: &str, at: i64) -> Result<bool> {
    let done = on_conn!(c, c => sqlx::query(
        "UPDATE users SET password_hash = NULL, updated_at = $2 WHERE id = $1 AND password_hash IS NOT NULL")
        .bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Marks the email verified; false when it already was.
#[instrument(skip_all)]
pub async fn set_email_verified(c: &mut impl AsDbConn, id: &str, at: i64) -> Result<bool> {
    let done = on_conn!(c, c => sqlx::query(
        "UPDATE users SET email_verified = TRUE, updated_at = $2 WHERE id = $1 AND email_verified = FALSE")
        .bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

#[instrument(skip_all)]
pub async fn update_user_profile(
    c: &mut impl AsDbConn,
    id: &str,
    full_name: &str,
    timezone: &str,
    locale: &str,
    at: i64,
) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "UPDATE users SET full_name = $2, timezone = $3, locale = $4, updated_at = $5 WHERE id = $1")
        .bind(id).bind(full_name).bind(timezone).bind(locale).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Users of a tenant, and how many of them are owners.
#[instrument(skip_all)]
pub async fn count_tenant_users(c: &mut impl AsDbConn, tenant_id: &str) -> Result<(i64, i64)> {
    on_conn!(c, c => sqlx::query_as::<_, (i64, i64)>(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN role = 'owner' THEN 1 ELSE 0 END), 0) FROM users WHERE tenant_id = $1")
        .bind(tenant_id).fetch_one(c).await)
}

/// Deletes a user; their sessions, refresh tokens and one-time tokens go with them.
#[instrument(skip_all)]
pub async fn delete_user(c: &mut impl AsDbConn, id: &str) -> Result<bool> {
    let done = on_conn!(c, c => sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Erases a tenant: its users (and what cascades from them) and its audit log.
#[instrument(skip_all)]
pub async fn delete_tenant(c: &mut impl AsDbConn, id: &str) -> Result<bool> {
    on_conn!(c, c => sqlx::query("DELETE FROM audit_logs WHERE tenant_id = $1")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    let done = on_conn!(c, c => sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}
