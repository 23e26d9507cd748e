//! Operations: liveness, readiness, metrics, the JWKS and the OpenAPI document (API.md §10).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use moltflow_types::{ErrorBody, HealthStatus, JwkSet};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::routes::ApiRoutes as _;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .api_routes(routes!(healthz))
        .api_routes(routes!(readyz))
        .api_routes(routes!(metrics))
        .api_routes(routes!(jwks))
        .api_routes(routes!(openapi))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = HealthStatus)))]
async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus { status: "ok".to_owned() })
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, body = HealthStatus),
    (status = 503, description = "Database unreachable", body = ErrorBody),
))]
async fn readyz(state: AppState) -> Result<Json<HealthStatus>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "The database is unreachable")
    })?;
    Ok(Json(HealthStatus { status: "ok".to_owned() }))
}

/// Prometheus metrics: request counts and latency histograms by route and status.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(state: AppState) -> Response {
    if let Some(shared) = &state.rate_limits.shared {
        // As this node sees Redis now (also set on every change; refreshed here for the scrape).
        metrics::gauge!("moltflow_redis_up").set(if shared.is_up() { 1.0 } else { 0.0 });
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

/// Public keys that verify access tokens offline.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "ops", responses((status = 200, body = JwkSet)))]
async fn jwks(state: AppState) -> Json<JwkSet> {
    Json(JwkSet { keys: vec![state.jwt.jwk()] })
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, content_type = "application/json", body = Object)))]
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::routes::openapi_json()).into_response()
}
