//! The audit log: append-only entries written in the transaction of the change they record.

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct AuditRow {
    pub id: String,
    pub tenant_id: String,
    pub at: i64,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A JSON object.
    pub details: String,
}

#[instrument(skip_all)]
pub async fn insert_audit(c: &mut impl AsDbConn, e: &AuditRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO audit_logs (id, tenant_id, at, actor_type, actor_id, action, target, ip, user_agent, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(&e.id).bind(&e.tenant_id).bind(e.at).bind(&e.actor_type).bind(&e.actor_id).bind(&e.action)
        .bind(&e.target).bind(&e.ip).bind(&e.user_agent).bind(&e.details)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Entries of a tenant, newest first, optionally before the entry `before_id` and of one action.
#[instrument(skip_all)]
pub async fn list_audit(
    c: &mut impl AsDbConn,
    tenant_id: &str,
    before_id: Option<&str>,
    action: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditRow>> {
    on_conn!(c, c => sqlx::query_as::<_, AuditRow>(
        "SELECT id, tenant_id, at, actor_type, actor_id, action, target, ip, user_agent, details FROM audit_logs \
         WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR id < $2) AND (CAST($3 AS TEXT) IS NULL OR action = $3) \
         ORDER BY id DESC LIMIT $4")
        .bind(tenant_id).bind(before_id).bind(action).bind(limit).fetch_all(c).await)
}
