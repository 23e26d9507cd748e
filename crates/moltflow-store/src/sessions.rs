//! Login sessions and the refresh tokens that extend them (stored as SHA-256 only).

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub method: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Debug, FromRow)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub session_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
}

#[instrument(skip_all)]
pub async fn insert_session(c: &mut impl AsDbConn, s: &SessionRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO sessions (id, user_id, tenant_id, method, ip, user_agent, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&s.id).bind(&s.user_id).bind(&s.tenant_id).bind(&s.method).bind(&s.ip)
        .bind(&s.user_agent).bind(s.created_at).bind(s.revoked_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn find_session(c: &mut impl AsDbConn, id: &str) -> Result<Option<SessionRow>> {
    on_conn!(c, c => sqlx::query_as::<_, SessionRow>(
        "SELECT id, user_id, tenant_id, method, ip, user_agent, created_at, revoked_at \
         FROM sessions WHERE id = $1")
        .bind(id).fetch_optional(c).await)
}

/// Revokes one session; returns whether it was live.
#[instrument(skip_all)]
pub async fn revoke_session(c: &mut impl AsDbConn, id: &str, at: i64) -> Result<bool> {
    let done = on_conn!(c, c => sqlx::query(
        "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Revokes every live session of a user; returns their ids.
#[instrument(skip_all)]
pub async fn revoke_user_sessions(c: &mut impl AsDbConn, user_id: &str, at: i64) -> Result<Vec<String>> {
    on_conn!(c, c => sqlx::query_scalar::<_, String>(
        "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id")
        .bind(user_id).bind(at).fetch_all(c).await)
}

#[instrument(skip_all)]
pub async fn insert_refresh_token(c: &mut impl AsDbConn, t: &RefreshTokenRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, rotated_at) \
         VALUES ($1, $2, $3, $4, $5)")
        .bind(&t.token_hash).bind(&t.session_id).bind(t.created_at).bind(t.expires_at).bind(t.rotated_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn find_refresh_token(c: &mut impl AsDbConn, token_hash: &str) -> Result<Option<RefreshTokenRow>> {
    on_conn!(c, c => sqlx::query_as::<_, RefreshTokenRow>(
        "SELECT token_hash, session_id, created_at, expires_at, rotated_at FROM refresh_tokens WHERE token_hash = $1")
        .bind(token_hash).fetch_optional(c).await)
}

/// Marks a refresh token used; false when another request rotated it first.
#[instrument(skip_all)]
pub async fn mark_refresh_token_rotated(c: &mut impl AsDbConn, token_hash: &str, at: i64) -> Result<bool> {
    let done = on_conn!(c, c => sqlx::query(
        "UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1 AND rotated_at IS NULL")
        .bind(token_hash).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Revokes every live session of a user but one; returns their ids.
#[instrument(skip_all)]
pub async fn revoke_other_sessions(c: &mut impl AsDbConn, user_id: &str, keep: &str, at: i64) -> Result<Vec<String>> {
    on_conn!(c, c => sqlx::query_scalar::<_, String>(
        "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL RETURNING id")
        .bind(user_id).bind(keep).bind(at).fetch_all(c).await)
}
