//! The application router: every route under `/api/v2` and at the root, JSON fallbacks, and the
//! layers every request passes (observation, panic guard, body limit).

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::middleware::observe;
use crate::state::AppState;
use crate::{mcp, routes};

/// Bodies above this answer `400 body_too_large` (API.md §2).
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn app(state: AppState) -> Router {
    let (api, _) = routes::api().split_for_parts();
    let api = Router::new()
        .nest("/api/v2", api.clone())
        .merge(api)
        .route("/", axum::routing::get(crate::index_page::index))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // MCP tool calls run the API's routes in process, through the same layers as any request.
    let mcp = Router::new()
        .route_service("/mcp", mcp::endpoint::service(&state, guarded(api.clone())))
        .route_layer(axum::middleware::from_fn_with_state(state, mcp::endpoint::require_api_key));
    guarded(api.merge(mcp))
}

/// The layers every request passes: observation, the panic guard, the body limit.
fn guarded(router: Router) -> Router {
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            ApiError::internal().into_response()
        }))
        .layer(axum::middleware::from_fn(observe))
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method Not Allowed").into_response()
}

impl FromRequestParts<AppState> for AppState {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(state.clone())
    }
}
