//! `/tenant/*` and `/audit-logs` (API.md §8).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use moltflow_types::{
    AcceptInvitationRequest, AuditPage, ChangeRoleRequest, ConsentRecord, ErrorBody, Invitation, InviteRequest,
    TenantMember, TenantSettings, TokenPair, UpdateTenantSettings, ValidationErrorBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Origin, QueryParams};
use crate::principal::{AuditRead, Caller, MembersManage, MembersRead, SettingsManage, SettingsRead};
use crate::routes::ApiRoutes as _;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .api_routes(routes!(get_settings, update_settings))
        .api_routes(routes!(list_consents))
        .api_routes(routes!(list_members))
        .api_routes(routes!(change_member_role, remove_member))
        .api_routes(routes!(list_audit_logs))
        .api_routes(routes!(list_invitations, create_invitation))
        .api_routes(routes!(revoke_invitation))
        .api_routes(routes!(accept_invitation))
}

/// The tenant's settings (any member, or `settings:read`).
#[utoipa::path(get, path = "/tenant/settings", tag = "tenant", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = TenantSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
))]
async fn get_settings(state: AppState, caller: Caller<SettingsRead>) -> ApiResult<Json<TenantSettings>> {
    Ok(Json(state.settings().get(&caller).await?))
}

/// Change any subset of the settings (owner/admin, or `settings:manage`). A present
/// `ai_consent_enabled` appends a GDPR consent record.
#[utoipa::path(patch, path = "/tenant/settings", tag = "tenant", security(("bearer" = []), ("api_key" = [])),
    request_body = UpdateTenantSettings, responses(
    (status = 200, body = TenantSettings), (status = 401, body = ErrorBody),
    (status = 403, description = "Members, and keys without `settings:manage`", body = ErrorBody),
    (status = 422, body = ValidationErrorBody),
))]
async fn update_settings(
    state: AppState,
    caller: Caller<SettingsManage>,
    origin: Origin,
    JsonBody(patch): JsonBody<UpdateTenantSettings>,
) -> ApiResult<Json<TenantSettings>> {
    Ok(Json(state.settings().update(&caller, patch, &origin).await?))
}

/// Consent records, newest first (owner/admin, or `audit:read`).
#[utoipa::path(get, path = "/tenant/consents", tag = "tenant", security(("bearer" = []), ("api_key" = [])),
    params(("limit" = Option<i64>, Query, description = "1–500, default 100", minimum = 1, maximum = 500)), responses(
    (status = 200, body = Vec<ConsentRecord>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 422, body = ValidationErrorBody),
))]
async fn list_consents(
    state: AppState,
    caller: Caller<AuditRead>,
    query: QueryParams,
) -> ApiResult<Json<Vec<ConsentRecord>>> {
    let limit = query.int("limit", 100, 1, 500)?;
    Ok(Json(state.settings().consents(&caller, limit).await?))
}

/// The tenant's users, oldest first.
#[utoipa::path(get, path = "/tenant/members", tag = "members", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Vec<TenantMember>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
))]
async fn list_members(state: AppState, caller: Caller<MembersRead>) -> ApiResult<Json<Vec<TenantMember>>> {
    Ok(Json(state.members().list(&caller).await?))
}

/// Change a member's role. Only an owner grants `owner` or `admin`; the last owner stays. A
/// demotion revokes the pending invitations the member can no longer grant.
#[utoipa::path(patch, path = "/tenant/members/{user_id}", tag = "members", security(("bearer" = []), ("api_key" = [])),
    params(("user_id" = String, Path)), request_body = ChangeRoleRequest, responses(
    (status = 200, body = TenantMember), (status = 401, body = ErrorBody),
    (status = 403, description = "Not allowed for the caller's role (`owner_required`) or scope; a key promoting someone to a role holding scopes the key lacks (`scope_escalation`); granting owner or admin while the caller's email is not verified (`email_unverified`)", body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, description = "`last_owner`", body = ErrorBody),
    (status = 422, body = ValidationErrorBody),
))]
async fn change_member_role(
    state: AppState,
    caller: Caller<MembersManage>,
    origin: Origin,
    Path(user_id): Path<String>,
    JsonBody(req): JsonBody<ChangeRoleRequest>,
) -> ApiResult<Json<TenantMember>> {
    Ok(Json(state.members().change_role(&caller, &user_id, &req.role, &origin).await?))
}

/// Remove a member: their sessions, API keys and pending invitations stop working at once.
#[utoipa::path(delete, path = "/tenant/members/{user_id}", tag = "members", security(("bearer" = []), ("api_key" = [])),
    params(("user_id" = String, Path)), responses(
    (status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, description = "`last_owner`", body = ErrorBody),
))]
async fn remove_member(
    state: AppState,
    caller: Caller<MembersManage>,
    origin: Origin,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    state.members().remove(&caller, &user_id, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit log, newest first, by pages (owner/admin, or `audit:read`).
#[utoipa::path(get, path = "/audit-logs", tag = "audit", security(("bearer" = []), ("api_key" = [])),
    params(
        ("limit" = Option<i64>, Query, description = "1–200, default 50", minimum = 1, maximum = 200),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("action" = Option<String>, Query, description = "Only entries of this action, e.g. `login.failed`"),
    ), responses(
    (status = 200, body = AuditPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 422, body = ValidationErrorBody),
))]
async fn list_audit_logs(state: AppState, caller: Caller<AuditRead>, query: QueryParams) -> ApiResult<Json<AuditPage>> {
    let limit = query.int("limit", 50, 1, 200)?;
    let page = state.audit_log().list(&caller, limit, query.get("cursor"), query.get("action")).await;
    Ok(Json(page.map_err(ApiError::from_query)?))
}

/// Invite an address into the tenant; the invitation is mailed (owners and admins with a verified
/// email, or `members:manage`; only owners invite admins and owners).
#[utoipa::path(post, path = "/tenant/invitations", tag = "members", security(("bearer" = []), ("api_key" = [])),
    request_body = InviteRequest, responses(
    (status = 201, body = Invitation), (status = 401, body = ErrorBody),
    (status = 403, description = "Missing `members:manage`; `owner_required` for admin/owner invitations; the inviter's email is not verified (`email_unverified`); a key inviting into a role holding scopes the key lacks (`scope_escalation`)", body = ErrorBody),
    (status = 409, description = "The address has an account (`email_taken`)", body = ErrorBody),
    (status = 429, description = "More than 3 invitation mails an hour to this address or 100 invitations a day from this tenant (`rate_limited`)", body = ErrorBody),
    (status = 422, body = ValidationErrorBody),
))]
async fn create_invitation(
    state: AppState,
    caller: Caller<MembersManage>,
    origin: Origin,
    JsonBody(req): JsonBody<InviteRequest>,
) -> ApiResult<(StatusCode, Json<Invitation>)> {
    Ok((StatusCode::CREATED, Json(state.invitations().invite(&caller, req, &origin).await?)))
}

/// The tenant's invitations, newest first, with their status.
#[utoipa::path(get, path = "/tenant/invitations", tag = "members", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Vec<Invitation>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
))]
async fn list_invitations(state: AppState, caller: Caller<MembersRead>) -> ApiResult<Json<Vec<Invitation>>> {
    Ok(Json(state.invitations().list(&caller).await?))
}

/// Revoke a pending invitation; its link stops working.
#[utoipa::path(delete, path = "/tenant/invitations/{id}", tag = "members", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path)), responses(
    (status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
async fn revoke_invitation(
    state: AppState,
    caller: Caller<MembersManage>,
    origin: Origin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.invitations().revoke(&caller, &id, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation: creates the account in the inviting tenant with the invited role and
/// signs it in (public; the token comes from the mail).
#[utoipa::path(post, path = "/auth/accept-invitation", tag = "auth", request_body = AcceptInvitationRequest, responses(
    (status = 201, body = TokenPair),
    (status = 400, description = "Invalid, expired, revoked or used, or its sender may no longer grant its role (`invalid_token`)", body = ErrorBody),
    (status = 409, description = "The address has an account (`email_taken`)", body = ErrorBody),
    (status = 422, body = ValidationErrorBody),
))]
async fn accept_invitation(
    state: AppState,
    origin: Origin,
    JsonBody(req): JsonBody<AcceptInvitationRequest>,
) -> ApiResult<(StatusCode, Json<TokenPair>)> {
    Ok((StatusCode::CREATED, Json(state.invitations().accept(req, &origin).await?)))
}
