//! `/auth/*`: register, login, refresh, me, logout (API.md §3).

use axum::Json;
use axum::http::StatusCode;
use moltflow_core::clock::rfc3339;
use moltflow_types::{
    AuthInfo, ErrorBody, LoginRequest, LogoutRequest, MeResponse, RefreshRequest, RegisterRequest, TokenPair,
    ValidationErrorBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{JsonBody, OptionalJsonBody, Origin};
use crate::principal::{AccountRead, Caller, Credential, Principal, SignedIn};
use crate::routes::ApiRoutes as _;
use crate::routes::throttle;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .api_routes(routes!(register))
        .api_routes(routes!(login))
        .api_routes(routes!(refresh))
        .api_routes(routes!(me))
        .api_routes(routes!(logout))
}

/// Create a tenant on the free plan and its owner; answers a signed-in token pair.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, description = "Account created", body = TokenPair),
    (status = 400, description = "Malformed body", body = ErrorBody),
    (status = 409, description = "Email taken (`email_taken`)", body = ErrorBody),
    (status = 422, description = "Invalid field", body = ValidationErrorBody),
    (status = 429, description = "Too many sign-ups from this IP", body = ErrorBody),
))]
async fn register(
    state: AppState,
    origin: Origin,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<TokenPair>)> {
    throttle(&state.rate_limits.register_ip, &origin, "Too many sign-ups from this address", state.clock.now_ms())
        .await?;
    let pair = state.auth().register(req, &origin).await?;
    Ok((StatusCode::CREATED, Json(pair)))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, description = "Signed in", body = TokenPair),
    (status = 401, description = "Wrong email or password (`invalid_credentials`)", body = ErrorBody),
    (status = 422, description = "Invalid field", body = ValidationErrorBody),
    (status = 429, description = "Five passwords of this account checked in 15 minutes (`login_locked`), or too many attempts from this network (`rate_limited`)", body = ErrorBody),
))]
async fn login(state: AppState, origin: Origin, JsonBody(req): JsonBody<LoginRequest>) -> ApiResult<Json<TokenPair>> {
    throttle(&state.rate_limits.login_ip, &origin, "Too many login attempts from this address", state.clock.now_ms())
        .await?;
    Ok(Json(state.auth().login(req, &origin).await?))
}

/// Exchange a refresh token for a new pair; the old refresh token is spent.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, description = "New token pair", body = TokenPair),
    (status = 401, description = "Invalid, expired or revoked (`invalid_token`), or reused (`refresh_token_reused`)", body = ErrorBody),
    (status = 422, description = "Invalid field", body = ValidationErrorBody),
))]
async fn refresh(
    state: AppState,
    origin: Origin,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    Ok(Json(state.sessions().refresh(&req.refresh_token, &origin).await?))
}

/// The caller and how it authenticated.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "The caller", body = MeResponse),
    (status = 401, description = "Not authenticated, or bad credentials", body = ErrorBody),
    (status = 403, description = "Key lacks `account:read`", body = ErrorBody),
))]
async fn me(principal: Caller<AccountRead>) -> Json<MeResponse> {
    Json(me_body(&principal))
}

/// The caller as `/auth/me` shows it (MCP's `whoami` answers the same).
pub(crate) fn me_body(principal: &Principal) -> MeResponse {
    let user = &principal.user;
    let (method, api_key_id, session_id, scopes) = match &principal.credential {
        Credential::Session { session_id, .. } => ("jwt", None, Some(session_id.clone()), principal.role.scopes()),
        Credential::ApiKey { key_id } => ("api_key", Some(key_id.clone()), None, principal.scopes),
    };
    let scopes =
        if scopes.is_all() { vec!["*".to_owned()] } else { scopes.names().into_iter().map(str::to_owned).collect() };
    MeResponse {
        id: user.id.clone(),
        email: user.email.clone(),
        full_name: user.full_name.clone(),
        role: user.role,
        tenant_id: user.tenant_id.clone(),
        email_verified: user.email_verified,
        has_password: user.password_hash.is_some(),
        created_at: rfc3339(user.created_at),
        auth: AuthInfo { method: method.to_owned(), scopes, api_key_id, session_id },
    }
}

/// End this session (or every session of the user); its access token stops working at once.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])), request_body(content = Option<LogoutRequest>), responses(
    (status = 204, description = "Signed out"),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Called with an API key (`user_principal_required`)", body = ErrorBody),
))]
async fn logout(
    state: AppState,
    principal: SignedIn,
    origin: Origin,
    OptionalJsonBody(req): OptionalJsonBody<LogoutRequest>,
) -> ApiResult<StatusCode> {
    state.sessions().logout(&principal, req.all_sessions.unwrap_or(false), &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
