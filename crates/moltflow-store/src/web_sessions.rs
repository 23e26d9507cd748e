//! The dashboard's session cookies: a random token (kept as SHA-256 only) naming a row of
//! `sessions`, with the times its idle and absolute timeouts are measured from.

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct WebSessionRow {
    pub token_hash: String,
    pub session_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

#[instrument(skip_all)]
pub async fn insert_web_session(c: &mut impl AsDbConn, w: &WebSessionRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO web_sessions (token_hash, session_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4)")
        .bind(&w.token_hash).bind(&w.session_id).bind(w.created_at).bind(w.last_seen_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn find_web_session(c: &mut impl AsDbConn, token_hash: &str) -> Result<Option<WebSessionRow>> {
    on_conn!(c, c => sqlx::query_as::<_, WebSessionRow>(
        "SELECT token_hash, session_id, created_at, last_seen_at FROM web_sessions WHERE token_hash = $1")
        .bind(token_hash).fetch_optional(c).await)
}

/// Notes activity (the idle timeout counts from it).
#[instrument(skip_all)]
pub async fn touch_web_session(c: &mut impl AsDbConn, token_hash: &str, at: i64) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "UPDATE web_sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2")
        .bind(token_hash).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn delete_web_session(c: &mut impl AsDbConn, token_hash: &str) -> Result<()> {
    on_conn!(c, c => sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
        .bind(token_hash).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}
