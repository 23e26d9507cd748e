//! API keys, stored by the SHA-256 of their secret.

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub created_by: String,
    pub name: String,
    pub key_prefix: String,
    pub key_hash: String,
    pub previous_key_hash: Option<String>,
    pub previous_expires_at: Option<i64>,
    /// Space-separated scope names.
    pub scopes: String,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

macro_rules! key_columns {
    () => {
        "id, tenant_id, created_by, name, key_prefix, key_hash, previous_key_hash, previous_expires_at, scopes, \
         expires_at, created_at, last_used_at, revoked_at"
    };
}

#[instrument(skip_all)]
pub async fn insert_api_key(c: &mut impl AsDbConn, k: &ApiKeyRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(concat!("INSERT INTO api_keys (", key_columns!(), ") \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"))
        .bind(&k.id).bind(&k.tenant_id).bind(&k.created_by).bind(&k.name).bind(&k.key_prefix).bind(&k.key_hash)
        .bind(&k.previous_key_hash).bind(k.previous_expires_at).bind(&k.scopes).bind(k.expires_at)
        .bind(k.created_at).bind(k.last_used_at).bind(k.revoked_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The key whose current or (in a rotation's grace period) previous secret hashes to `hash`.
#[instrument(skip_all)]
pub async fn find_api_key_by_hash(c: &mut impl AsDbConn, hash: &str) -> Result<Option<ApiKeyRow>> {
    const SQL: &str =
        concat!("SELECT ", key_columns!(), " FROM api_keys WHERE key_hash = $1 OR previous_key_hash = $1");
    on_conn!(c, c => sqlx::query_as::<_, ApiKeyRow>(SQL).bind(hash).fetch_optional(c).await)
}

/// A key of a tenant (another tenant's id finds nothing).
#[instrument(skip_all)]
pub async fn find_api_key(c: &mut impl AsDbConn, tenant_id: &str, id: &str) -> Result<Option<ApiKeyRow>> {
    const SQL: &str = concat!("SELECT ", key_columns!(), " FROM api_keys WHERE tenant_id = $1 AND id = $2");
    on_conn!(c, c => sqlx::query_as::<_, ApiKeyRow>(SQL).bind(tenant_id).bind(id).fetch_optional(c).await)
}

/// Keys of a tenant, newest first; only those created by `created_by` when given.
#[instrument(skip_all)]
pub async fn list_api_keys(c: &mut impl AsDbConn, tenant_id: &str, created_by: Option<&str>) -> Result<Vec<ApiKeyRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR created_by = $2) \
         ORDER BY created_at DESC, id DESC"
    );
    on_conn!(c, c => sqlx::query_as::<_, ApiKeyRow>(SQL).bind(tenant_id).bind(created_by).fetch_all(c).await)
}

/// Which keys a page lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyFilter {
    #[default]
    All,
    /// Neither revoked nor expired at `now`.
    Active,
    /// Revoked, or expired at `now`.
    Inactive,
}

impl KeyFilter {
    fn as_str(self) -> &'static str {
        match self {
            KeyFilter::All => "all",
            KeyFilter::Active => "active",
            KeyFilter::Inactive => "inactive",
        }
    }
}

/// What a page of keys is cut from.
#[derive(Clone, Debug, Default)]
pub struct KeyPageQuery<'a> {
    /// Only keys created by this user.
    pub created_by: Option<&'a str>,
    /// Only keys older than this `(created_at, id)`: the last key of the previous page.
    pub before: Option<(i64, &'a str)>,
    /// A lower-case `LIKE` pattern (escaped with a backslash) matched against the lower-cased name
    /// and prefix.
    pub pattern: Option<&'a str>,
    pub state: KeyFilter,
    /// The time the state filter is judged at.
    pub now: i64,
    pub limit: i64,
}

/// A page of a tenant's keys, newest first (`created_at`, then `id`, both descending).
#[instrument(skip_all)]
pub async fn page_api_keys(c: &mut impl AsDbConn, tenant_id: &str, q: &KeyPageQuery<'_>) -> Result<Vec<ApiKeyRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR created_by = $2) \
         AND (CAST($3 AS BIGINT) IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
         AND (CAST($5 AS TEXT) IS NULL OR LOWER(name) LIKE $5 ESCAPE '\\' OR LOWER(key_prefix) LIKE $5 ESCAPE '\\') \
         AND ($6 = 'all' \
              OR ($6 = 'active' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $7)) \
              OR ($6 = 'inactive' AND (revoked_at IS NOT NULL OR expires_at <= $7))) \
         ORDER BY created_at DESC, id DESC LIMIT $8"
    );
    let (before_at, before_id) = match q.before {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    };
    on_conn!(c, c => sqlx::query_as::<_, ApiKeyRow>(SQL)
        .bind(tenant_id).bind(q.created_by).bind(before_at).bind(before_id).bind(q.pattern)
        .bind(q.state.as_str()).bind(q.now).bind(q.limit)
        .fetch_all(c).await)
}

/// Revokes a live key; false when it was revoked already.
#[instrument(skip_all)]
pub async fn revoke_api_key(c: &mut impl AsDbConn, id: &str, at: i64) -> Result<bool> {
    let n = on_conn!(c, c => sqlx::query(
        "UPDATE api_keys SET revoked_at = $2, previous_key_hash = NULL, previous_expires_at = NULL \
         WHERE id = $1 AND revoked_at IS NULL")
        .bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Revokes every live key a user created; returns the hashes that stop working.
#[instrument(skip_all)]
pub async fn revoke_user_api_keys(
    c: &mut impl AsDbConn,
    user_id: &str,
    at: i64,
) -> Result<Vec<(String, Option<String>)>> {
    on_conn!(c, c => sqlx::query_as::<_, (String, Option<String>)>(
        "UPDATE api_keys SET revoked_at = $2, previous_key_hash = NULL, previous_expires_at = NULL \
         WHERE created_by = $1 AND revoked_at IS NULL RETURNING key_hash, previous_key_hash")
        .bind(user_id).bind(at).fetch_all(c).await)
}

/// Replaces a live key's secret; the old hash stays valid until `previous_expires_at` (if any).
#[instrument(skip_all)]
pub async fn rotate_api_key(
    c: &mut impl AsDbConn,
    id: &str,
    new_hash: &str,
    new_prefix: &str,
    previous_hash: Option<&str>,
    previous_expires_at: Option<i64>,
) -> Result<bool> {
    let n = on_conn!(c, c => sqlx::query(
        "UPDATE api_keys SET key_hash = $2, key_prefix = $3, previous_key_hash = $4, previous_expires_at = $5 \
         WHERE id = $1 AND revoked_at IS NULL")
        .bind(id).bind(new_hash).bind(new_prefix).bind(previous_hash).bind(previous_expires_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Records use times; never moves `last_used_at` backwards.
#[instrument(skip_all)]
pub async fn touch_api_keys(c: &mut impl AsDbConn, uses: &[(String, i64)]) -> Result<()> {
    for (id, at) in uses {
        on_conn!(c, c => sqlx::query(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
            .bind(id).bind(*at).execute(c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}
