//! Invitations to join a tenant.

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, DbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: String,
    pub token_hash: String,
    pub invited_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, revoked_at"
    };
}

#[instrument(skip_all)]
pub async fn insert_invitation(c: &mut impl AsDbConn, i: &InvitationRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(concat!("INSERT INTO invitations (", columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
        .bind(&i.id).bind(&i.tenant_id).bind(&i.email).bind(&i.role).bind(&i.token_hash).bind(&i.invited_by)
        .bind(i.created_at).bind(i.expires_at).bind(i.accepted_at).bind(i.revoked_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn list_invitations(c: &mut impl AsDbConn, tenant_id: &str) -> Result<Vec<InvitationRow>> {
    const SQL: &str =
        concat!("SELECT ", columns!(), " FROM invitations WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC");
    on_conn!(c, c => sqlx::query_as::<_, InvitationRow>(SQL).bind(tenant_id).fetch_all(c).await)
}

#[instrument(skip_all)]
pub async fn find_invitation(c: &mut impl AsDbConn, tenant_id: &str, id: &str) -> Result<Option<InvitationRow>> {
    const SQL: &str = concat!("SELECT ", columns!(), " FROM invitations WHERE tenant_id = $1 AND id = $2");
    on_conn!(c, c => sqlx::query_as::<_, InvitationRow>(SQL).bind(tenant_id).bind(id).fetch_optional(c).await)
}

#[instrument(skip_all)]
pub async fn find_invitation_by_token(c: &mut impl AsDbConn, token_hash: &str) -> Result<Option<InvitationRow>> {
    const SQL: &str = concat!("SELECT ", columns!(), " FROM invitations WHERE token_hash = $1");
    on_conn!(c, c => sqlx::query_as::<_, InvitationRow>(SQL).bind(token_hash).fetch_optional(c).await)
}

/// Revokes the pending invitations of an address in a tenant (a new one replaces them).
#[instrument(skip_all)]
pub async fn revoke_pending_for_email(c: &mut impl AsDbConn, tenant_id: &str, email: &str, at: i64) -> Result<u64> {
    on_conn!(c, c => sqlx::query(
        "UPDATE invitations SET revoked_at = $3 WHERE tenant_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL")
        .bind(tenant_id).bind(email).bind(at).execute(c).await.map(|r| r.rows_affected()))
}

/// Revokes one pending invitation; false when it was accepted or revoked already.
#[instrument(skip_all)]
pub async fn revoke_invitation(c: &mut impl AsDbConn, id: &str, at: i64) -> Result<bool> {
    let n = on_conn!(c, c => sqlx::query(
        "UPDATE invitations SET revoked_at = $2 WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL")
        .bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Accepts a pending, unexpired invitation; false when another request got there first.
#[instrument(skip_all)]
pub async fn accept_invitation(c: &mut impl AsDbConn, id: &str, at: i64) -> Result<bool> {
    let n = on_conn!(c, c => sqlx::query(
        "UPDATE invitations SET accepted_at = $2 WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2")
        .bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Revokes the pending invitations a user sent: all of them, or (`above_member_only`) those for
/// the admin and owner roles. Returns how many were revoked.
#[instrument(skip_all)]
pub async fn revoke_pending_sent_by(
    c: &mut impl AsDbConn,
    inviter: &str,
    above_member_only: bool,
    at: i64,
) -> Result<u64> {
    on_conn!(c, c => sqlx::query(
        "UPDATE invitations SET revoked_at = $2 WHERE invited_by = $1 AND accepted_at IS NULL AND revoked_at IS NULL \
         AND ($3 = FALSE OR role <> 'member')")
        .bind(inviter).bind(at).bind(above_member_only).execute(c).await.map(|r| r.rows_affected()))
}

/// Invitations a tenant created since `since`: how many, and the oldest one's time.
#[instrument(skip_all)]
pub async fn count_tenant_invitations_since(
    c: &mut impl AsDbConn,
    tenant_id: &str,
    since: i64,
) -> Result<(i64, Option<i64>)> {
    on_conn!(c, c => sqlx::query_as::<_, (i64, Option<i64>)>(
        "SELECT COUNT(*), MIN(created_at) FROM invitations WHERE tenant_id = $1 AND created_at >= $2")
        .bind(tenant_id).bind(since).fetch_one(c).await)
}

/// Serialises the transactions that count and mail invitations to one address, whatever tenant
/// they come from: a transaction-scoped advisory lock on PostgreSQL; nothing on SQLite, whose
/// write transactions already run one at a time.
#[instrument(skip_all)]
pub async fn lock_invited_address(c: &mut impl AsDbConn, email: &str) -> Result<()> {
    match c.db_conn() {
        DbConn::Sqlite(_) => Ok(()),
        DbConn::Postgres(c) => {
            sqlx::query("SELECT pg_advisory_xact_lock(7001, hashtext($1))").bind(email).execute(c).await?;
            Ok(())
        }
    }
}
