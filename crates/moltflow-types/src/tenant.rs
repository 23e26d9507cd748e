//! Tenant settings, consent records, members and the audit log (API.md §8).

use moltflow_core::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"allowed_numbers": ["+5511999999999"], "require_approval": false, "ai_consent_enabled": true, "chat_history_access_enabled": false}))]
pub struct TenantSettings {
    /// E.164 numbers allowed to send, deduplicated.
    pub allowed_numbers: Vec<String>,
    /// Whether outgoing messages need an admin's approval.
    pub require_approval: bool,
    /// Whether AI features may process the tenant's data (GDPR consent).
    pub ai_consent_enabled: bool,
    pub chat_history_access_enabled: bool,
}

/// Any subset of the settings; only the fields present change.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ai_consent_enabled": true}))]
pub struct UpdateTenantSettings {
    /// `+` and 8–15 digits each (E.164), at most 500 distinct; duplicates are dropped (a longer
    /// list whose duplicates bring it to 500 is accepted too; `maxItems` is the safe bound).
    #[serde(default)]
    #[schema(max_items = 500)]
    pub allowed_numbers: Option<Vec<String>>,
    #[serde(default)]
    pub require_approval: Option<bool>,
    /// Present (true or false): a consent record is appended.
    #[serde(default)]
    pub ai_consent_enabled: Option<bool>,
    #[serde(default)]
    pub chat_history_access_enabled: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"id": "0193a6c3-…", "consent_type": "ai_processing", "version": "1.0", "granted": true, "user_id": "0193a6c0-…", "ip": "203.0.113.7", "user_agent": "curl/8.5.0", "created_at": "2026-11-24T10:00:00Z"}))]
pub struct ConsentRecord {
    pub id: String,
    pub consent_type: String,
    pub version: String,
    pub granted: bool,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"id": "0193a6c0-…", "user_id": "0193a6c0-…", "email": "ana@example.com", "full_name": "Ana Lima", "role": "owner", "email_verified": true, "created_at": "2026-11-24T10:00:00Z"}))]
pub struct TenantMember {
    pub id: String,
    /// The same as `id`: the path parameter of the member routes.
    pub user_id: String,
    pub email: String,
    pub full_name: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub email_verified: bool,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub struct ChangeRoleRequest {
    /// `owner`, `admin` or `member`.
    #[schema(pattern = "^(owner|admin|member)$")]
    pub role: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct AuditActor {
    /// `user`, `api_key`, `system` or `anonymous`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub actor: AuditActor,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// One page of the audit log, newest first; pass `next_cursor` as `cursor` for the next page.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"items": [{"id": "0193a6c4-…", "at": "2026-11-24T10:00:00Z", "actor": {"type": "user", "id": "0193a6c0-…"}, "action": "settings.updated", "target": "0193a6bf-…", "ip": "203.0.113.7", "user_agent": "curl/8.5.0", "details": {"fields": ["ai_consent_enabled"]}}], "next_cursor": null}))]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "bruno@example.com", "role": "member"}))]
pub struct InviteRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// `member` (default), `admin` or `owner`; only owners invite admins and owners.
    #[serde(default)]
    #[schema(pattern = "^(owner|admin|member)$")]
    pub role: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"id": "0193a6c5-…", "email": "bruno@example.com", "role": "member", "status": "pending", "invited_by": "0193a6c0-…", "created_at": "2026-11-24T10:00:00Z", "expires_at": "2026-12-01T10:00:00Z", "accepted_at": null, "revoked_at": null}))]
pub struct Invitation {
    pub id: String,
    pub email: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    pub invited_by: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub accepted_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "from-the-invitation-mail", "full_name": "Bruno Costa", "password": "quiet-river-lantern-7"}))]
pub struct AcceptInvitationRequest {
    pub token: String,
    #[schema(min_length = 1, max_length = 100)]
    pub full_name: String,
    /// Optional: without one the account signs in by magic link.
    #[serde(default)]
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
}
