//! Tenant settings and the GDPR consent records that `ai_consent_enabled` changes leave behind.

use moltflow_core::clock::{Clock, rfc3339};
use moltflow_core::ids::new_id;
use moltflow_store::Store;
use moltflow_store::tenant::{ConsentRow, SettingsRow, find_settings, insert_consent, list_consents, upsert_settings};
use moltflow_types::{ConsentRecord, TenantSettings, UpdateTenantSettings};
use serde_json::json;

use crate::services::audit::{self, Actor, Entry};
use crate::services::failure::{Issues, Outcome};
use crate::services::origin::Origin;
use crate::services::principal::Authorized;
use crate::services::principal::guards::{AuditRead, SettingsManage, SettingsRead};

/// What the tenant-settings use cases work with.
pub struct Settings<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
}

pub const MAX_ALLOWED_NUMBERS: usize = 500;
pub const CONSENT_TYPE_AI: &str = "ai_processing";
pub const CONSENT_VERSION: &str = "1.0";

fn defaults(tenant_id: &str) -> SettingsRow {
    SettingsRow {
        tenant_id: tenant_id.to_owned(),
        allowed_numbers: "[]".to_owned(),
        require_approval: false,
        ai_consent_enabled: false,
        chat_history_access_enabled: false,
        updated_at: 0,
    }
}

fn to_dto(row: &SettingsRow) -> TenantSettings {
    TenantSettings {
        allowed_numbers: serde_json::from_str(&row.allowed_numbers).unwrap_or_default(),
        require_approval: row.require_approval,
        ai_consent_enabled: row.ai_consent_enabled,
        chat_history_access_enabled: row.chat_history_access_enabled,
    }
}

/// E.164 as the contract states it: `+` then 8–15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else { return false };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// Checks and deduplicates `allowed_numbers` (first occurrence wins the order).
fn check_numbers(issues: &mut Issues, numbers: &[String]) -> Vec<String> {
    let mut unique: Vec<String> = Vec::with_capacity(numbers.len().min(MAX_ALLOWED_NUMBERS));
    for (i, n) in numbers.iter().enumerate() {
        if !is_e164(n) {
            let shown: String = n.chars().take(32).collect();
            issues.fail(
                &format!("allowed_numbers.{i}"),
                format!("{shown:?} is not an E.164 number (+ and 8 to 15 digits)"),
                "value_error",
            );
        } else if !unique.contains(n) {
            unique.push(n.clone());
        }
    }
    if unique.len() > MAX_ALLOWED_NUMBERS {
        issues.fail(
            "allowed_numbers",
            format!("At most {MAX_ALLOWED_NUMBERS} distinct numbers are allowed"),
            "too_long",
        );
    }
    unique
}

impl Settings<'_> {
    /// The tenant's settings (defaults until first changed).
    pub async fn get(&self, p: &Authorized<SettingsRead>) -> Outcome<TenantSettings> {
        let tenant_id = p.tenant_id();
        let mut conn = self.store.conn().await?;
        let row = find_settings(&mut conn, tenant_id).await?.unwrap_or_else(|| defaults(tenant_id));
        Ok(to_dto(&row))
    }

    /// Applies a partial update; a present `ai_consent_enabled` appends a consent record in the same
    /// transaction, and both are audited.
    pub async fn update(
        &self,
        p: &Authorized<SettingsManage>,
        patch: UpdateTenantSettings,
        origin: &Origin,
    ) -> Outcome<TenantSettings> {
        let mut issues = Issues::default();
        let numbers = patch.allowed_numbers.as_deref().map(|n| check_numbers(&mut issues, n));
        issues.finish()?;
        let now = self.clock.now_ms();
        let tenant_id = p.tenant_id();
        let mut tx = self.store.begin().await?;
        let mut row = find_settings(&mut tx, tenant_id).await?.unwrap_or_else(|| defaults(tenant_id));
        let mut fields = Vec::new();
        if let Some(numbers) = numbers {
            row.allowed_numbers = serde_json::to_string(&numbers).map_err(anyhow::Error::from)?;
            fields.push("allowed_numbers");
        }
        if let Some(v) = patch.require_approval {
            row.require_approval = v;
            fields.push("require_approval");
        }
        if let Some(v) = patch.ai_consent_enabled {
            row.ai_consent_enabled = v;
            fields.push("ai_consent_enabled");
        }
        if let Some(v) = patch.chat_history_access_enabled {
            row.chat_history_access_enabled = v;
            fields.push("chat_history_access_enabled");
        }
        if fields.is_empty() {
            return Ok(to_dto(&row));
        }
        row.updated_at = now;
        upsert_settings(&mut tx, &row).await?;
        let (kind, actor_id) = p.actor();
        let entry = Entry {
            tenant_id,
            actor: Actor { kind, id: Some(actor_id.clone()) },
            action: "settings.updated",
            target: Some(tenant_id.to_owned()),
            meta: origin,
            details: json!({"fields": fields, "settings": to_dto(&row)}),
        };
        audit::record_at(&mut tx, entry, now).await?;
        if let Some(granted) = patch.ai_consent_enabled {
            let record = ConsentRow {
                id: new_id(),
                tenant_id: tenant_id.to_owned(),
                consent_type: CONSENT_TYPE_AI.to_owned(),
                version: CONSENT_VERSION.to_owned(),
                granted,
                user_id: Some(p.user.id.clone()),
                ip: origin.ip_string(),
                user_agent: origin.user_agent.clone(),
                created_at: now,
            };
            insert_consent(&mut tx, &record).await?;
            let entry = Entry {
                tenant_id,
                actor: Actor { kind, id: Some(actor_id) },
                action: "consent.recorded",
                target: Some(record.id.clone()),
                meta: origin,
                details: json!({"consent_type": CONSENT_TYPE_AI, "version": CONSENT_VERSION, "granted": granted}),
            };
            audit::record_at(&mut tx, entry, now).await?;
        }
        tx.commit().await?;
        Ok(to_dto(&row))
    }

    /// The tenant's consent records, newest first, `limit` of them (the caller bounds it).
    pub async fn consents(&self, p: &Authorized<AuditRead>, limit: i64) -> Outcome<Vec<ConsentRecord>> {
        let mut conn = self.store.conn().await?;
        let rows = list_consents(&mut conn, p.tenant_id(), limit).await?;
        Ok(rows
            .into_iter()
            .map(|r| ConsentRecord {
                id: r.id,
                consent_type: r.consent_type,
                version: r.version,
                granted: r.granted,
                user_id: r.user_id,
                ip: r.ip,
                user_agent: r.user_agent,
                created_at: rfc3339(r.created_at),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::is_e164;

    #[test]
    fn e164_is_plus_and_8_to_15_digits() {
        for ok in ["+5511999999999", "+14155550123", "+12345678", "+123456789012345"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in
            ["5511999999999", "+1234567", "+1234567890123456", "+55 11 99999", "+55abc99999", "+0123456789", "", "+"]
        {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
