//! One-time tokens (password reset, email verification, magic link, invitation), kept as SHA-256.

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct OneTimeTokenRow {
    pub token_hash: String,
    /// `reset`, `verify`, `magic` or `invite`.
    pub kind: String,
    pub user_id: Option<String>,
    pub email: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[instrument(skip_all)]
pub async fn insert_one_time_token(c: &mut impl AsDbConn, t: &OneTimeTokenRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO one_time_tokens (token_hash, kind, user_id, email, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&t.token_hash).bind(&t.kind).bind(&t.user_id).bind(&t.email).bind(t.created_at)
        .bind(t.expires_at).bind(t.used_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn find_one_time_token(c: &mut impl AsDbConn, token_hash: &str) -> Result<Option<OneTimeTokenRow>> {
    on_conn!(c, c => sqlx::query_as::<_, OneTimeTokenRow>(
        "SELECT token_hash, kind, user_id, email, created_at, expires_at, used_at FROM one_time_tokens \
         WHERE token_hash = $1")
        .bind(token_hash).fetch_optional(c).await)
}

/// Spends a token of `kind` that is unused and unexpired at `now`; false when it is not (so of two
/// requests racing with one token, exactly one wins).
#[instrument(skip_all)]
pub async fn use_one_time_token(c: &mut impl AsDbConn, token_hash: &str, kind: &str, now: i64) -> Result<bool> {
    let done = on_conn!(c, c => sqlx::query(
        "UPDATE one_time_tokens SET used_at = $3 WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL \
         AND expires_at > $3")
        .bind(token_hash).bind(kind).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Spends every unused token of `kind` of a user (a newer one supersedes them, or their purpose is
/// done); returns how many.
#[instrument(skip_all)]
pub async fn use_user_tokens(c: &mut impl AsDbConn, user_id: &str, kind: &str, now: i64) -> Result<u64> {
    on_conn!(c, c => sqlx::query(
        "UPDATE one_time_tokens SET used_at = $3 WHERE user_id = $1 AND kind = $2 AND used_at IS NULL")
        .bind(user_id).bind(kind).bind(now).execute(c).await.map(|r| r.rows_affected()))
}
