//! `/users/me`: the caller's profile, its changes and the account's deletion (API.md §4).

use axum::Json;
use axum::http::StatusCode;
use moltflow_types::{DeleteAccountRequest, ErrorBody, UpdateProfileRequest, UserProfile, ValidationErrorBody};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{JsonBody, OptionalJsonBody, Origin};
use crate::principal::{AccountManage, AccountRead, Caller, SignedIn};
use crate::routes::ApiRoutes as _;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().api_routes(routes!(get_me, update_me, delete_me))
}

/// The caller's profile.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "Profile", body = UserProfile),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Key lacks `account:read`", body = ErrorBody),
))]
async fn get_me(state: AppState, principal: Caller<AccountRead>) -> ApiResult<Json<UserProfile>> {
    Ok(Json(state.users().get_me(&principal).await?))
}

/// Change any of `full_name` (1–100 characters), `timezone` (IANA) and `locale` (BCP 47).
#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = []), ("api_key" = [])), request_body = UpdateProfileRequest, responses(
    (status = 200, description = "Updated profile", body = UserProfile),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Key lacks `account:manage`", body = ErrorBody),
    (status = 422, description = "Empty or long name, unknown time zone, malformed locale", body = ValidationErrorBody),
))]
async fn update_me(
    state: AppState,
    principal: Caller<AccountManage>,
    JsonBody(req): JsonBody<UpdateProfileRequest>,
) -> ApiResult<Json<UserProfile>> {
    Ok(Json(state.users().update_me(&principal, req).await?))
}

/// Erase the account (and its tenant when it was the only member). Needs `current_password`, or
/// for a passwordless account a session opened by a magic link less than 10 minutes ago. Erasing
/// a tenant first cancels its paid subscription at the billing provider, at once; if the provider
/// fails, nothing is erased.
#[utoipa::path(delete, path = "/users/me", tag = "users", security(("bearer" = [])), request_body(content = Option<DeleteAccountRequest>), responses(
    (status = 204, description = "Account erased"),
    (status = 400, description = "Wrong current password (`invalid_current_password`)", body = ErrorBody),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "API key (`user_principal_required`), or no fresh magic-link session (`reauthentication_required`)", body = ErrorBody),
    (status = 409, description = "Last owner of a tenant with other members (`last_owner`); the members changed while the tenant was being erased (`members_changed`)", body = ErrorBody),
    (status = 422, description = "`current_password` missing", body = ValidationErrorBody),
    (status = 429, description = "Too many wrong passwords for this account (`login_locked`), the principal's rate limit, or too many failed authentications from this network (`rate_limited`)", body = ErrorBody),
    (status = 502, description = "The billing provider refused to cancel the tenant's subscription (`billing_provider_error`); nothing was erased", body = ErrorBody),
    (status = 503, description = "The billing provider is unreachable (`billing_unavailable`, with `Retry-After`); nothing was erased", body = ErrorBody),
))]
async fn delete_me(
    state: AppState,
    principal: SignedIn,
    origin: Origin,
    OptionalJsonBody(req): OptionalJsonBody<DeleteAccountRequest>,
) -> ApiResult<StatusCode> {
    state.users().delete_me(&principal, req, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
