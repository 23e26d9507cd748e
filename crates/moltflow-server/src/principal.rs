//! Who is calling: a user (access token of a live session) or an API key, with the scopes it
//! holds. Verified tokens and session states come from memory (see `auth::cache`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use moltflow_core::scope::ScopeSet;
use moltflow_core::{Role, Scope};
use moltflow_store::accounts::UserRow;

use crate::auth::jwt::TokenError;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Clone, Debug)]
pub enum Credential {
    Session { session_id: String, method: String, created_at: i64 },
    ApiKey { key_id: String },
}

#[derive(Clone, Debug)]
pub struct Principal {
    pub user: Arc<UserRow>,
    pub role: Role,
    /// What the caller may do, with implied scopes expanded.
    pub scopes: ScopeSet,
    pub credential: Credential,
}

impl Principal {
    pub fn tenant_id(&self) -> &str {
        &self.user.tenant_id
    }

    /// `403 insufficient_scope` naming the scope unless the caller holds it.
    pub fn require(&self, scope: &str) -> ApiResult<()> {
        let needed = Scope::parse(scope).ok_or_else(ApiError::internal)?;
        if self.scopes.contains(needed) {
            Ok(())
        } else {
            let mut err = ApiError::forbidden("insufficient_scope", format!("This action requires the scope {scope}"));
            err.extra = Some(serde_json::Map::from_iter([("required_scope".to_owned(), scope.into())]));
            Err(err)
        }
    }

    /// The session id of a user principal; API keys get `403 user_principal_required`.
    pub fn require_user(&self) -> ApiResult<&str> {
        match &self.credential {
            Credential::Session { session_id, .. } => Ok(session_id),
            Credential::ApiKey { .. } => Err(ApiError::forbidden(
                "user_principal_required",
                "This action needs a user's access token, not an API key",
            )),
        }
    }

    pub fn actor(&self) -> (&'static str, String) {
        match &self.credential {
            Credential::Session { .. } => ("user", self.user.id.clone()),
            Credential::ApiKey { key_id } => ("api_key", key_id.clone()),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(key) = parts.headers.get("x-api-key") {
            let key = key.to_str().map_err(|_| invalid_api_key())?;
            return authenticate_api_key(state, key.trim()).await;
        }
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(ApiError::not_authenticated());
        };
        let value = value.to_str().map_err(|_| invalid_token())?;
        let (scheme, token) = value.trim().split_once(' ').ok_or_else(invalid_token)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(invalid_token());
        }
        let token = token.trim();
        if token.starts_with("mf_") {
            return authenticate_api_key(state, token).await;
        }
        authenticate_access_token(state, token).await
    }
}

fn invalid_token() -> ApiError {
    ApiError::unauthorized("invalid_token", "Invalid or revoked access token")
}

fn invalid_api_key() -> ApiError {
    ApiError::unauthorized("invalid_api_key", "Invalid or revoked API key")
}

async fn authenticate_access_token(state: &AppState, token: &str) -> ApiResult<Principal> {
    let claims = match state.auth_cache.verified_token(token) {
        Some(claims) => claims,
        None => {
            let claims = Arc::new(state.jwt.verify(token).map_err(|e| match e {
                TokenError::Expired => ApiError::unauthorized("token_expired", "The access token has expired"),
                TokenError::Invalid => invalid_token(),
            })?);
            state.auth_cache.remember_token(token, claims.clone());
            claims
        }
    };
    let session = state.auth_cache.session(&state.store, &claims.sid).await.map_err(|e| {
        tracing::error!(error = %e, "loading session");
        ApiError::unavailable("Authentication is temporarily unavailable")
    })?;
    let user = match (&session.user, session.revoked) {
        (Some(user), false) if user.id == claims.sub && user.tenant_id == claims.tid => user.clone(),
        _ => return Err(invalid_token()),
    };
    let role: Role = user.role.parse().map_err(|_| ApiError::internal())?;
    Ok(Principal {
        scopes: role.scopes().expanded(),
        role,
        user,
        credential: Credential::Session {
            session_id: claims.sid.clone(),
            method: session.method.clone(),
            created_at: session.created_at,
        },
    })
}

/// API keys arrive with issue 4; until then no key exists, so every key is refused as invalid.
async fn authenticate_api_key(_state: &AppState, _raw: &str) -> ApiResult<Principal> {
    Err(invalid_api_key())
}
