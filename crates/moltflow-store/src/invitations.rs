//! Invitations to join a tenant.

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

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
