//! API key bodies (API.md §5).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "outreach-bot", "scopes": ["messages:send", "custom-groups:manage", "bulk-send:manage"], "expires_in_days": 90}))]
pub struct CreateApiKeyRequest {
    /// 1–100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Catalogued scopes (or `*`), unique, at least one; none beyond the caller's own.
    #[schema(min_items = 1)]
    pub scopes: Vec<String>,
    /// 1–3650; omitted or null: the key never expires.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"grace_period_minutes": 60}))]
pub struct RotateApiKeyRequest {
    /// 0–1440 (default 0): how long the old secret keeps working.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 1440)]
    pub grace_period_minutes: Option<i64>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6c1-…", "name": "outreach-bot", "key_prefix": "mf_abc1",
    "scopes": ["messages:send", "custom-groups:manage", "bulk-send:manage"],
    "expires_at": "2027-02-22T10:00:00Z", "created_at": "2026-11-24T10:00:00Z", "last_used_at": null,
    "is_active": true, "revoked_at": null, "created_by": "0193a6c0-…"
}))]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The first 7 characters of the key.
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// False once revoked or expired.
    pub is_active: bool,
    pub revoked_at: Option<String>,
    /// The user who created the key.
    pub created_by: String,
}

/// A key with its secret: returned by create and rotate only.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6c1-…", "name": "outreach-bot", "key_prefix": "mf_abc1",
    "raw_key": "mf_abc1234567890abcdefABCDEF1234567890abcdefgh",
    "scopes": ["messages:send"], "expires_at": null, "created_at": "2026-11-24T10:00:00Z", "last_used_at": null,
    "is_active": true, "revoked_at": null, "created_by": "0193a6c0-…"
}))]
pub struct ApiKeyWithSecret {
    #[serde(flatten)]
    pub key: ApiKey,
    /// Shown once: store it now.
    pub raw_key: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ScopeEntry {
    pub scope: String,
    pub resource: String,
    pub action: String,
    pub description: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ScopePreset {
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "scopes": [{"scope": "messages:send", "resource": "messages", "action": "send", "description": "Send messages"}],
    "presets": [{"name": "messaging", "description": "Send and read messages", "scopes": ["messages:send"]}]
}))]
pub struct ScopeCatalogue {
    pub scopes: Vec<ScopeEntry>,
    pub presets: Vec<ScopePreset>,
}

/// An optional whole number, `2.0` included: JSON Schema's `integer` is any number without a
/// fraction, so a client may send one as a float.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    n.as_i64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
        .map(Some)
        .ok_or_else(|| D::Error::custom("invalid type: floating point, expected i64"))
}
