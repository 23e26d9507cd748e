//! Authentication bodies (API.md §3).

use moltflow_core::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ana@example.com", "password": "sunny-tulip-harbor-42", "full_name": "Ana Lima", "tenant_name": "Lima Agency"}))]
pub struct RegisterRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Optional: without one the account signs in by magic link until a password is set.
    #[serde(default)]
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    pub full_name: String,
    /// Defaults to the user's full name.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub tenant_name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ana@example.com", "password": "sunny-tulip-harbor-42"}))]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "q3Zk1W0…"}))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"all_sessions": false}))]
pub struct LogoutRequest {
    /// Revoke every session of the user, not only this one.
    #[serde(default)]
    pub all_sessions: Option<bool>,
}

/// The user as the token pair names it.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: String,
    pub email: String,
    pub full_name: String,
    /// `owner`, `admin` or `member`.
    #[schema(value_type = String)]
    pub role: Role,
    pub tenant_id: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9…",
    "refresh_token": "q3Zk1W0…",
    "token_type": "bearer",
    "expires_in": 1800,
    "user": {"id": "0193a6c1-…", "email": "ana@example.com", "full_name": "Ana Lima", "role": "owner", "tenant_id": "0193a6c1-…"}
}))]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user: UserSummary,
}

/// How the caller authenticated.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct AuthInfo {
    /// `jwt` or `api_key`.
    pub method: String,
    pub scopes: Vec<String>,
    pub api_key_id: Option<String>,
    pub session_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6c1-…", "email": "ana@example.com", "full_name": "Ana Lima", "role": "owner",
    "tenant_id": "0193a6c1-…", "email_verified": false, "has_password": true,
    "created_at": "2026-11-24T10:00:00Z",
    "auth": {"method": "jwt", "scopes": ["*"], "api_key_id": null, "session_id": "0193a6c2-…"}
}))]
pub struct MeResponse {
    pub id: String,
    pub email: String,
    pub full_name: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub tenant_id: String,
    pub email_verified: bool,
    pub has_password: bool,
    pub created_at: String,
    pub auth: AuthInfo,
}
