//! Who is calling: a user (access token of a live session) or an API key, with the scopes it
//! holds. Verified tokens and session states come from memory (see `auth::cache`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderName;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use moltflow_core::api_key::is_well_formed;
use moltflow_core::secret::{Sha256Hex, constant_time_eq};

use crate::error::{ApiError, ApiResult};
use crate::extract::request_client_ip;
use crate::state::AppState;
use moltflow_app::auth::cache::{CachedKey, KeyState};
use moltflow_app::auth::jwt::{Claims, TokenError};
use moltflow_app::auth::rate_limit::PrincipalRates as _;

pub use moltflow_app::services::principal::guards::*;
pub use moltflow_app::services::principal::{Authorized, Credential, Principal, ScopeGuard, UserSession};

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // One reading of the clock for the whole request (expiry, cached states, throttles, limits).
        let now = state.clock.now_ms();
        let principal = authenticate(parts, state, now).await?;
        let id = match &principal.credential {
            Credential::Session { .. } => &principal.user.id,
            Credential::ApiKey { key_id } => key_id,
        };
        match state.rate_limits.principal.check(id, &principal.plan_id, now).await {
            None => {}
            Some(Ok(info)) => crate::request_context::record_rate(info),
            Some(Err((info, wait))) => {
                crate::request_context::record_rate(info);
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

/// The credential a request carries, as presented.
enum Presented<'a> {
    ApiKey(&'a str),
    Token(&'a str),
    /// A header that holds no usable credential at all (`invalid_token` or `invalid_api_key`).
    Malformed(ApiError),
}

/// A name made once: a `&str` is parsed into a name on every lookup.
pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

fn presented(parts: &Parts) -> Option<Presented<'_>> {
    if let Some(key) = parts.headers.get(&X_API_KEY) {
        // Bytes trimmed, then UTF-8 checked: a key is ASCII letters and digits, and `to_str` plus
        // `str::trim` walked it twice more on every request.
        return Some(match std::str::from_utf8(key.as_bytes().trim_ascii()) {
            Ok(key) => Presented::ApiKey(key),
            Err(_) => Presented::Malformed(invalid_api_key()),
        });
    }
    let value = parts.headers.get(AUTHORIZATION)?;
    let bearer = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    Some(match bearer {
        Some(token) if token.starts_with("mf_") => Presented::ApiKey(token),
        Some(token) => Presented::Token(token),
        None => Presented::Malformed(invalid_token()),
    })
}

async fn authenticate(parts: &Parts, state: &AppState, now: i64) -> Result<Principal, ApiError> {
    let presented = presented(parts).ok_or_else(ApiError::not_authenticated)?;
    match presented {
        Presented::ApiKey(raw) if is_well_formed(raw) => {
            let hash = Sha256Hex::of(raw);
            let hash = hash.as_str();
            // Looked up once: the same lookup tells the throttle whether the secret is known valid.
            let cached = state.auth_cache.cached_key(hash, now).await;
            let known = || state.auth_cache.is_known_valid(&cached, hash);
            throttled(parts, state, now, known, async {
                let loaded;
                let key = match &cached {
                    CachedKey::Usable(key) => key,
                    CachedKey::Unknown => return Err(invalid_api_key()),
                    CachedKey::Absent => {
                        loaded = state
                            .auth_cache
                            .load_key_state(&state.store, hash, now)
                            .await
                            .map_err(state_unavailable)?
                            .ok_or_else(invalid_api_key)?;
                        &loaded
                    }
                };
                authenticate_api_key(state, key, hash, now)
            })
            .await
        }
        // Not a key's shape: refused unread.
        Presented::ApiKey(_) => throttled(parts, state, now, || false, async { Err(invalid_api_key()) }).await,
        // The signature is checked before the budget: it costs an Ed25519 verification, not the
        // lookup the budget protects, and a token that passes it was minted with our key (by any
        // node), so it is no guess. Its session may still be revoked: that counts afterwards.
        Presented::Token(token) => match verified_claims(state, token, now) {
            Ok(claims) => throttled(parts, state, now, || true, authenticate_session(state, claims, now)).await,
            Err(error) => throttled(parts, state, now, || false, async { Err(error) }).await,
        },
        Presented::Malformed(error) => throttled(parts, state, now, || false, async { Err(error) }).await,
    }
}

/// Runs an authentication under the failed-authentication throttle (API.md §3): a credential not
/// known valid (a key this node has seen work, or an access token whose signature checks) is
/// charged to the client's network before it is looked up (`429` when the network's failures are
/// used up) and refunded if it works; a known one that fails counts after.
async fn throttled(
    parts: &Parts,
    state: &AppState,
    now: i64,
    known_valid: impl FnOnce() -> bool,
    authentication: impl Future<Output = ApiResult<Principal>>,
) -> ApiResult<Principal> {
    let throttle = &state.rate_limits.failed_auth;
    if !throttle.is_enabled() {
        return authentication.await;
    }
    let ip = || request_client_ip(parts, state);
    let charged = if known_valid() {
        None
    } else {
        throttle.charge(ip(), now).await.map_err(|wait| {
            ApiError::too_many("rate_limited", "Too many failed authentications from this network", wait)
        })?
    };
    let result = authentication.await;
    let failed = matches!(&result, Err(e) if e.status == StatusCode::UNAUTHORIZED);
    match charged {
        Some(charged) if !failed => throttle.refund(charged).await,
        Some(_) => {}
        None if failed => throttle.record(ip(), now).await,
        None => {}
    }
    result
}

fn state_unavailable(e: Arc<moltflow_store::StoreError>) -> ApiError {
    tracing::error!(error = %e, "loading credentials");
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "Authentication is temporarily unavailable",
    )
    .with_retry_after(1)
}

fn invalid_token() -> ApiError {
    ApiError::unauthorized("invalid_token", "Invalid or revoked access token")
}

fn invalid_api_key() -> ApiError {
    ApiError::unauthorized("invalid_api_key", "Invalid or revoked API key")
}

/// The token's claims: from memory if this node has verified it before, else verified now.
fn verified_claims(state: &AppState, token: &str, now: i64) -> ApiResult<Arc<Claims>> {
    if let Some(claims) = state.auth_cache.verified_token(token, now) {
        return Ok(claims);
    }
    let claims = Arc::new(state.jwt.verify(token, now).map_err(|e| match e {
        TokenError::Expired => ApiError::unauthorized("token_expired", "The access token has expired"),
        TokenError::Invalid => invalid_token(),
    })?);
    state.auth_cache.remember_token(token, claims.clone());
    Ok(claims)
}

/// A verified token's session: live, and still the token's user and tenant.
async fn authenticate_session(state: &AppState, claims: Arc<Claims>, now: i64) -> ApiResult<Principal> {
    let session = state.auth_cache.session(&state.store, &claims.sid, now).await.map_err(state_unavailable)?;
    let member = match (&session.member, session.revoked) {
        (Some(m), false) if m.user.id == claims.sub && m.user.tenant_id == claims.tid => m,
        _ => return Err(invalid_token()),
    };
    let role = member.user.role;
    Ok(Principal {
        scopes: role.granted(),
        role,
        user: member.user.clone(),
        plan_id: member.plan_id.clone(),
        credential: Credential::Session {
            session_id: claims.sid.clone(),
            method: session.method.clone(),
            created_at: session.created_at,
        },
    })
}

/// A key is found by the SHA-256 of its secret (from memory when hot); it acts with its scopes
/// intersected with its creator's current role.
/// `key`: the state found by `hash`, the SHA-256 of a well-formed secret.
fn authenticate_api_key(state: &AppState, key: &KeyState, hash: &str, now: i64) -> ApiResult<Principal> {
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
    let role = member.user.role;
    state.auth_cache.note_valid_key(key, hash);
    state.last_used.note(key, now);
    Ok(Principal {
        scopes: key.scopes.intersect(role.granted()),
        role,
        user: member.user.clone(),
        plan_id: member.plan_id.clone(),
        credential: Credential::ApiKey { key_id: key.id.clone() },
    })
}

/// The caller, authorised for `G::SCOPE` before the body is read: a caller without the scope
/// gets `403` whatever it sent. It carries the use case's proof, `Authorized<G>`.
pub struct Caller<G>(pub Authorized<G>);

impl<G> std::ops::Deref for Caller<G> {
    type Target = Authorized<G>;
    fn deref(&self) -> &Authorized<G> {
        &self.0
    }
}

impl<G: ScopeGuard + Send + Sync> FromRequestParts<AppState> for Caller<G> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        Ok(Caller(Authorized::new(principal)?))
    }
}

/// The caller, which must be a user signed in with an access token (not an API key): checked
/// before the body is read, so a key gets `403 user_principal_required` whatever it sent.
pub struct SignedIn(pub UserSession);

impl std::ops::Deref for SignedIn {
    type Target = UserSession;
    fn deref(&self) -> &UserSession {
        &self.0
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        Ok(SignedIn(UserSession::new(principal)?))
    }
}
