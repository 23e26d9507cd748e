//! The JWT signing key generated on first start, shared by every node through the database.

use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

/// The oldest key: `(kid, private key)`.
#[instrument(skip_all)]
pub async fn find_signing_key(c: &mut impl AsDbConn) -> Result<Option<(String, String)>> {
    on_conn!(c, c => sqlx::query_as::<_, (String, String)>(
        "SELECT kid, private_key FROM signing_keys ORDER BY created_at, kid LIMIT 1")
        .fetch_optional(c).await)
}

/// Stores a key unless one with that kid exists.
#[instrument(skip_all)]
pub async fn insert_signing_key(c: &mut impl AsDbConn, kid: &str, private_key: &str, at: i64) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO signing_keys (kid, private_key, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING")
        .bind(kid).bind(private_key).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}
