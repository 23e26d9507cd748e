//! Tenant settings and consent records (insert and read only: there is no update or delete).

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct SettingsRow {
    pub tenant_id: String,
    /// JSON array of E.164 numbers.
    pub allowed_numbers: String,
    pub require_approval: bool,
    pub ai_consent_enabled: bool,
    pub chat_history_access_enabled: bool,
    pub updated_at: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct ConsentRow {
    pub id: String,
    pub tenant_id: String,
    pub consent_type: String,
    pub version: String,
    pub granted: bool,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
}

#[instrument(skip_all)]
pub async fn find_settings(c: &mut impl AsDbConn, tenant_id: &str) -> Result<Option<SettingsRow>> {
    on_conn!(c, c => sqlx::query_as::<_, SettingsRow>(
        "SELECT tenant_id, allowed_numbers, require_approval, ai_consent_enabled, chat_history_access_enabled, updated_at \
         FROM tenant_settings WHERE tenant_id = $1")
        .bind(tenant_id).fetch_optional(c).await)
}

#[instrument(skip_all)]
pub async fn upsert_settings(c: &mut impl AsDbConn, s: &SettingsRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO tenant_settings (tenant_id, allowed_numbers, require_approval, ai_consent_enabled, \
         chat_history_access_enabled, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id) DO UPDATE SET allowed_numbers = excluded.allowed_numbers, \
         require_approval = excluded.require_approval, ai_consent_enabled = excluded.ai_consent_enabled, \
         chat_history_access_enabled = excluded.chat_history_access_enabled, updated_at = excluded.updated_at")
        .bind(&s.tenant_id).bind(&s.allowed_numbers).bind(s.require_approval).bind(s.ai_consent_enabled)
        .bind(s.chat_history_access_enabled).bind(s.updated_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[instrument(skip_all)]
pub async fn insert_consent(c: &mut impl AsDbConn, r: &ConsentRow) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO consent_records (id, tenant_id, consent_type, version, granted, user_id, ip, user_agent, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&r.id).bind(&r.tenant_id).bind(&r.consent_type).bind(&r.version).bind(r.granted)
        .bind(&r.user_id).bind(&r.ip).bind(&r.user_agent).bind(r.created_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A tenant's consent records, newest first.
#[instrument(skip_all)]
pub async fn list_consents(c: &mut impl AsDbConn, tenant_id: &str, limit: i64) -> Result<Vec<ConsentRow>> {
    on_conn!(c, c => sqlx::query_as::<_, ConsentRow>(
        "SELECT id, tenant_id, consent_type, version, granted, user_id, ip, user_agent, created_at \
         FROM consent_records WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2")
        .bind(tenant_id).bind(limit).fetch_all(c).await)
}
