//! `/usage/*`: events, consume, gauges, and the current, history and daily reports (API.md §7).

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use moltflow_types::{
    ConsumeRequest, ConsumeResponse, ErrorBody, Gauges, GaugesRequest, QuotaExceededBody, UsageCurrent, UsageDaily,
    UsageEventsRequest, UsageEventsResponse, UsageMonth, ValidationErrorBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::principal::{Caller, UsageRead, UsageWrite};
use crate::routes::ApiRoutes as _;
use crate::state::AppState;

/// `/usage/events` takes batches of 1000 events: its bodies may reach 1 MiB (API.md §2).
pub const EVENTS_BODY_LIMIT: usize = 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    let events =
        OpenApiRouter::new().api_routes(routes!(ingest_events)).layer(DefaultBodyLimit::max(EVENTS_BODY_LIMIT));
    OpenApiRouter::new()
        .merge(events)
        .api_routes(routes!(consume))
        .api_routes(routes!(set_gauges))
        .api_routes(routes!(current))
        .api_routes(routes!(history))
        .api_routes(routes!(daily))
}

/// Report usage: each event counts once per id within the tenant; replays count as duplicates.
/// Answered once the events are committed to the database.
#[utoipa::path(post, path = "/usage/events", tag = "usage", security(("bearer" = []), ("api_key" = [])),
    request_body = UsageEventsRequest, responses(
    (status = 202, description = "Counted", body = UsageEventsResponse),
    (status = 400, description = "Malformed body, or over 1 MiB (`body_too_large`)", body = ErrorBody),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Lacks `usage:write`", body = ErrorBody),
    (status = 422, description = "Bad event (unknown metric, quantity, timestamp, duplicate id) or over 1000 events", body = ValidationErrorBody),
))]
async fn ingest_events(
    state: AppState,
    principal: Caller<UsageWrite>,
    JsonBody(req): JsonBody<UsageEventsRequest>,
) -> ApiResult<(StatusCode, Json<UsageEventsResponse>)> {
    let out = state.usage().ingest_events(&principal, req).await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// Check and count quota in one step: allowed only if the month's total stays within the plan
/// limit, however many callers race. A repeated `idempotency_key` is counted once.
#[utoipa::path(post, path = "/usage/consume", tag = "usage", security(("bearer" = []), ("api_key" = [])),
    request_body = ConsumeRequest, responses(
    (status = 200, description = "Allowed and counted", body = ConsumeResponse),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Lacks `usage:write`", body = ErrorBody),
    (status = 409, description = "Idempotency key reused for another metric or quantity", body = ErrorBody),
    (status = 422, description = "Unknown or gauge metric, bad quantity", body = ValidationErrorBody),
    (status = 429, description = "Over the plan limit (`quota_exceeded`); not counted. `Retry-After` until the reset", body = QuotaExceededBody),
))]
async fn consume(
    state: AppState,
    principal: Caller<UsageWrite>,
    JsonBody(req): JsonBody<ConsumeRequest>,
) -> ApiResult<Json<ConsumeResponse>> {
    Ok(Json(state.usage().consume(&principal, req).await?))
}

/// Set current counts of sessions, groups or labels (those present in the body).
#[utoipa::path(put, path = "/usage/gauges", tag = "usage", security(("bearer" = []), ("api_key" = [])),
    request_body = GaugesRequest, responses(
    (status = 200, description = "Every gauge after the change", body = Gauges),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Lacks `usage:write`", body = ErrorBody),
    (status = 422, description = "Not a non-negative integer, or no gauge given", body = ValidationErrorBody),
))]
async fn set_gauges(
    state: AppState,
    principal: Caller<UsageWrite>,
    JsonBody(req): JsonBody<GaugesRequest>,
) -> ApiResult<Json<Gauges>> {
    Ok(Json(state.usage().set_gauges(&principal, req).await?))
}

/// This month's usage of every metric against the tenant's plan.
#[utoipa::path(get, path = "/usage/current", tag = "usage", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, description = "Usage of the current month (UTC)", body = UsageCurrent),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Lacks `usage:read`", body = ErrorBody),
))]
async fn current(state: AppState, principal: Caller<UsageRead>) -> ApiResult<Json<UsageCurrent>> {
    Ok(Json(state.usage().current(&principal).await?))
}

/// Monthly counters, newest first, this month included.
#[utoipa::path(get, path = "/usage/history", tag = "usage", security(("bearer" = []), ("api_key" = [])),
    params(("months" = Option<u32>, Query, description = "1 to 36 (default 12)", minimum = 1, maximum = 36)),
    responses(
    (status = 200, description = "One entry per month, zero-filled", body = Vec<UsageMonth>),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Lacks `usage:read`", body = ErrorBody),
    (status = 422, description = "`months` out of range", body = ValidationErrorBody),
))]
async fn history(
    state: AppState,
    principal: Caller<UsageRead>,
    query: QueryParams,
) -> ApiResult<Json<Vec<UsageMonth>>> {
    let months = query.get("months");
    Ok(Json(state.usage().history(&principal, months).await.map_err(ApiError::from_query)?))
}

/// Daily usage of one month, every day up to today, with messages per WhatsApp session.
#[utoipa::path(get, path = "/usage/daily", tag = "usage", security(("bearer" = []), ("api_key" = [])),
    params(
        ("month" = Option<String>, Query, description = "`YYYY-MM` (UTC), from 2000-01 to the current month (default)", pattern = r"^[2-9][0-9]{3}-(0[1-9]|1[0-2])$"),
        ("session_id" = Option<String>, Query, description = "Only this WhatsApp session"),
    ),
    responses(
    (status = 200, description = "The month's days, zero-filled", body = UsageDaily),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Lacks `usage:read`", body = ErrorBody),
    (status = 422, description = "`month` malformed or out of range", body = ValidationErrorBody),
))]
async fn daily(state: AppState, principal: Caller<UsageRead>, query: QueryParams) -> ApiResult<Json<UsageDaily>> {
    let (month, session_id) = (query.get("month"), query.get("session_id"));
    let out = state.usage().daily(&principal, month, session_id).await.map_err(ApiError::from_query)?;
    Ok(Json(out))
}
