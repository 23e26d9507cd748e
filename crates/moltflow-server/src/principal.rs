//! Who is calling: a user (access token of a live session) or an API key, with the scopes it
//! holds. Verified tokens and session states come from memory (see `auth::cache`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use moltflow_core::api_key::is_well_formed;
use moltflow_core::clock::now_ms;
use moltflow_core::scope::ScopeSet;
use moltflow_core::secret::{constant_time_eq, sha256_hex};
use moltflow_core::{Role, Scope};
use moltflow_store::accounts::UserRow;

use crate::auth::cache::Member;
use crate::auth::jwt::TokenError;
use crate::auth::rate_limit;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Clone, Debug)]
pub enum Credential {
    Session { session_id: String, method: String, created_at: i64 },
    ApiKey { key_id: String },
}

#[derive(Clone, Debug)]
pub struct Principal {
    /// The user, or for a key the user who created it.
    pub user: Arc<UserRow>,
    /// The tenant's plan as of the last second.
    pub plan_id: String,
    pub role: Role,
    /// What the caller may do, with implied scopes expanded.
    pub scopes: ScopeSet,
    pub credential: Credential,
    /// Where `/auth/me` keeps its rendered body for this caller's cached state.
    pub me_body: crate::auth::cache::MeBody,
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
        let principal = authenticate(parts, state).await?;
        let id = match &principal.credential {
            Credential::Session { .. } => &principal.user.id,
            Credential::ApiKey { key_id } => key_id,
        };
        match state.limits.principal.check(id, &principal.plan_id) {
            None => {}
            Some(Ok(info)) => rate_limit::record(info),
            Some(Err((info, wait))) => {
                rate_limit::record(info);
                return Err(ApiError::too_many(
                    "rate_limited",
                    format!("Rate limit of {} requests a minute exceeded", info.limit),
                    wait,
                ));
            }
        }
        Ok(principal)
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
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

fn state_unavailable(e: Arc<moltflow_store::DbError>) -> ApiError {
    tracing::error!(error = %e, "loading credentials");
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "Authentication is temporarily unavailable",
    )
    .with_retry_after(1)
}

fn role_of(member: &Member) -> ApiResult<Role> {
    member.user.role.parse().map_err(|_| ApiError::internal())
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
    let session = state.auth_cache.session(&state.store, &claims.sid).await.map_err(state_unavailable)?;
    let member = match (&session.member, session.revoked) {
        (Some(m), false) if m.user.id == claims.sub && m.user.tenant_id == claims.tid => m,
        _ => return Err(invalid_token()),
    };
    let role = role_of(member)?;
    Ok(Principal {
        scopes: role.scopes().expanded(),
        role,
        user: member.user.clone(),
        plan_id: member.plan_id.clone(),
        credential: Credential::Session {
            session_id: claims.sid.clone(),
            method: session.method.clone(),
            created_at: session.created_at,
        },
        me_body: session.me_body.clone(),
    })
}

/// A key is found by the SHA-256 of its secret (from memory when hot); it acts with its scopes
/// intersected with its creator's current role.
async fn authenticate_api_key(state: &AppState, raw: &str) -> ApiResult<Principal> {
    if !is_well_formed(raw) {
        return Err(invalid_api_key());
    }
    let hash = sha256_hex(raw);
    let key =
        state.auth_cache.api_key(&state.store, &hash).await.map_err(state_unavailable)?.ok_or_else(invalid_api_key)?;
    let now = now_ms();
    if key.revoked || key.previous_until.is_some_and(|until| until <= now) {
        return Err(invalid_api_key());
    }
    if key.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::unauthorized("api_key_expired", "The API key has expired"));
    }
    let member = key.member.as_ref().filter(|m| m.user.tenant_id == key.tenant_id).ok_or_else(invalid_api_key)?;
    // Found by an index lookup on the hash; compared again in constant time all the same.
    if !constant_time_eq(key.stored_hash.as_bytes(), hash.as_bytes()) {
        return Err(invalid_api_key());
    }
    let role = role_of(member)?;
    state.last_used.note(&key, now);
    Ok(Principal {
        scopes: key.scopes.expanded().intersect(role.scopes().expanded()),
        role,
        user: member.user.clone(),
        plan_id: member.plan_id.clone(),
        credential: Credential::ApiKey { key_id: key.id.clone() },
        me_body: key.me_body.clone(),
    })
}

/// A scope a route requires, as a type, so that the guard runs before the body is read: a caller
/// without the scope gets `403` whatever it sent.
pub trait ScopeGuard {
    const SCOPE: &'static str;
}

/// The caller, authorised for `G::SCOPE`.
pub struct Authorized<G>(pub Principal, std::marker::PhantomData<G>);

impl<G> std::ops::Deref for Authorized<G> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<G: ScopeGuard + Send + Sync> FromRequestParts<AppState> for Authorized<G> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require(G::SCOPE)?;
        Ok(Authorized(principal, std::marker::PhantomData))
    }
}

macro_rules! scope_guards {
    ($($name:ident = $scope:literal),* $(,)?) => {
        $(
            #[doc = concat!("Requires `", $scope, "`.")]
            pub struct $name;
            impl ScopeGuard for $name {
                const SCOPE: &'static str = $scope;
            }
        )*
    };
}

scope_guards!(
    AccountRead = "account:read",
    AccountManage = "account:manage",
    SettingsRead = "settings:read",
    SettingsManage = "settings:manage",
    UsageRead = "usage:read",
    UsageWrite = "usage:write",
    BillingRead = "billing:read",
    BillingManage = "billing:manage",
    MembersRead = "members:read",
    MembersManage = "members:manage",
    AuditRead = "audit:read",
);

/// The caller, which must be a user signed in with an access token (not an API key): checked
/// before the body is read, so a key gets `403 user_principal_required` whatever it sent.
pub struct UserSession(pub Principal);

impl std::ops::Deref for UserSession {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequestParts<AppState> for UserSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require_user()?;
        Ok(UserSession(principal))
    }
}
