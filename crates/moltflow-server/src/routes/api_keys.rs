//! `/api-keys*` (API.md §5). Every route needs `account:manage`.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use moltflow_types::{
    ApiKey, ApiKeyWithSecret, CreateApiKeyRequest, ErrorBody, RotateApiKeyRequest, ScopeCatalogue, ValidationErrorBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{JsonBody, OptionalJsonBody, Origin};
use crate::principal::{AccountManage, Caller};
use crate::routes::ApiRoutes as _;
use crate::state::AppState;
use moltflow_app::services::api_keys as keys;

type KeyManager = Caller<AccountManage>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .api_routes(routes!(list_api_keys, create_api_key))
        .api_routes(routes!(list_scopes))
        .api_routes(routes!(get_api_key, revoke_api_key))
        .api_routes(routes!(rotate_api_key))
}

/// The tenant's keys (a member's own only), newest first, revoked ones included.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Vec<ApiKey>),
    (status = 401, body = ErrorBody),
    (status = 403, description = "Missing `account:manage`", body = ErrorBody),
))]
async fn list_api_keys(state: AppState, principal: KeyManager) -> ApiResult<Json<Vec<ApiKey>>> {
    Ok(Json(state.api_keys().list(&principal.0).await?))
}

/// Create a key; `raw_key` is shown in this response only.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", security(("bearer" = []), ("api_key" = [])),
    request_body = CreateApiKeyRequest, responses(
    (status = 201, body = ApiKeyWithSecret),
    (status = 401, body = ErrorBody),
    (status = 403, description = "Missing `account:manage`; a scope the caller does not hold (`scope_escalation`); `members:manage`, `billing:manage` or `*` while the creator's email is not verified (`email_unverified`)", body = ErrorBody),
    (status = 422, body = ValidationErrorBody),
))]
async fn create_api_key(
    state: AppState,
    principal: KeyManager,
    origin: Origin,
    JsonBody(req): JsonBody<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<ApiKeyWithSecret>)> {
    Ok((StatusCode::CREATED, Json(state.api_keys().create(&principal.0, req, &origin).await?)))
}

/// The scope catalogue with a description each, and presets.
#[utoipa::path(get, path = "/api-keys/scopes", tag = "api-keys", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = ScopeCatalogue),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody),
))]
async fn list_scopes(_caller: KeyManager) -> ApiResult<Json<ScopeCatalogue>> {
    Ok(Json(keys::catalogue()))
}

/// One key (another tenant's, or for a member another user's: `404`).
#[utoipa::path(get, path = "/api-keys/{id}", tag = "api-keys", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "Key id")), responses(
    (status = 200, body = ApiKey),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
async fn get_api_key(state: AppState, principal: KeyManager, Path(id): Path<String>) -> ApiResult<Json<ApiKey>> {
    Ok(Json(state.api_keys().get(&principal.0, &id).await?))
}

/// Revoke a key: it stops working on the next request. Revoking again answers `204` too.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "Key id")), responses(
    (status = 204, description = "Revoked"),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
async fn revoke_api_key(
    state: AppState,
    principal: KeyManager,
    origin: Origin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.api_keys().revoke(&principal.0, &id, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a key's secret; the old one keeps working for `grace_period_minutes` (default 0).
/// Only the key's creator may rotate it.
#[utoipa::path(post, path = "/api-keys/{id}/rotate", tag = "api-keys", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "Key id")), request_body(content = Option<RotateApiKeyRequest>), responses(
    (status = 200, body = ApiKeyWithSecret),
    (status = 401, body = ErrorBody),
    (status = 403, description = "Missing `account:manage`; another user's key (`not_key_owner`); or, for a key principal, a key holding scopes the caller does not (`scope_escalation`)", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "Revoked (`api_key_revoked`) or expired (`api_key_expired`)", body = ErrorBody),
    (status = 422, body = ValidationErrorBody),
))]
async fn rotate_api_key(
    state: AppState,
    principal: KeyManager,
    origin: Origin,
    Path(id): Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<RotateApiKeyRequest>,
) -> ApiResult<Json<ApiKeyWithSecret>> {
    Ok(Json(state.api_keys().rotate(&principal.0, &id, req, &origin).await?))
}
