//! Mail-driven authentication (API.md §3) and the caller's own profile (API.md §4).

use moltflow_core::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ana@example.com"}))]
pub struct EmailRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "Hq2m0m4b7bJ4a0Wkq8yV3f0C1iXo9sLrQe5tZuN2w6A"}))]
pub struct TokenRequest {
    /// The token from the mailed link.
    pub token: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "Hq2m0m4b7bJ4a0Wkq8yV3f0C1iXo9sLrQe5tZuN2w6A", "new_password": "quiet-meadow-lantern-77"}))]
pub struct ResetPasswordRequest {
    pub token: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"password": "quiet-meadow-lantern-77", "current_password": "sunny-tulip-harbor-42"}))]
pub struct SetPasswordRequest {
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// Required when the account already has a password.
    #[serde(default)]
    pub current_password: Option<String>,
}

/// The answer of the routes that may send a mail: the same whatever happened.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"detail": "If an account exists for this address, we have sent it an email."}))]
pub struct AcceptedBody {
    pub detail: String,
}

/// A one-line confirmation.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"detail": "Your password has been reset. Sign in with the new one."}))]
pub struct DoneBody {
    pub detail: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6c1-…", "email": "ana@example.com", "full_name": "Ana Lima", "role": "owner",
    "tenant_id": "0193a6c1-…", "email_verified": true, "has_password": true,
    "timezone": "America/Sao_Paulo", "locale": "pt-BR",
    "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:05:00Z"
}))]
pub struct UserProfile {
    pub id: String,
    pub email: String,
    pub full_name: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub tenant_id: String,
    pub email_verified: bool,
    pub has_password: bool,
    /// IANA time zone name.
    pub timezone: String,
    /// BCP 47 language tag.
    pub locale: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"full_name": "Ana Lima", "timezone": "America/Sao_Paulo", "locale": "pt-BR"}))]
pub struct UpdateProfileRequest {
    /// 1–100 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub full_name: Option<String>,
    /// An IANA time zone name such as `Europe/Lisbon`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A BCP 47 language tag such as `pt-BR`.
    #[serde(default)]
    #[schema(
        max_length = 35,
        pattern = r"^([A-Za-z]{2,3}|[A-Za-z]{5,8})(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(-[A-Za-z0-9](-[A-Za-z0-9]{2,8})+)*$"
    )]
    pub locale: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "sunny-tulip-harbor-42"}))]
pub struct DeleteAccountRequest {
    /// Required when the account has a password; a passwordless account instead needs a session
    /// opened by a magic link less than 10 minutes ago.
    #[serde(default)]
    pub current_password: Option<String>,
}
