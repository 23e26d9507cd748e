//! The application router: every route under `/api/v2` and at the root, the dashboard's pages,
//! the fallbacks (JSON, or the dashboard's error page for a browser outside the API), and the
//! layers every request passes (observation, panic guard, body limit).

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::middleware::ObserveLayer;
use crate::state::AppState;
use crate::{dashboard, mcp, routes};

/// Bodies above this answer `400 body_too_large` (API.md §2).
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn app(state: AppState) -> Router {
    let (api, _) = routes::api().split_for_parts();
    let api = api.fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(state.clone());
    let mcp = Router::new().route_service("/mcp", mcp::endpoint::service(&state)).route_layer(
        axum::middleware::from_fn_with_state(mcp::endpoint::Gate::new(&state), mcp::endpoint::require_api_key),
    );
    guarded(api.merge(mcp).merge(dashboard::router(state)))
}

/// The layers every request passes: observation, the panic guard, the body limit.
///
/// One `layer` call: each call wraps every route in one more boxed service, which a request then
/// clones (an allocation per layer per request).
fn guarded(router: Router) -> Router {
    router.layer(
        tower::ServiceBuilder::new().layer(ObserveLayer).layer(panic_guard()).layer(DefaultBodyLimit::max(BODY_LIMIT)),
    )
}

/// A panicking handler answers `500 internal_error` with the request id (the guard runs inside
/// `observe`, so the id is in scope) and the connection and process keep serving. The panic is
/// logged once, by the panic hook (`telemetry::log_panics`), with its message and place: this
/// guard does not log again.
pub fn panic_guard() -> CatchPanicLayer<fn(Box<dyn std::any::Any + Send + 'static>) -> Response> {
    fn answer(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
        ApiError::internal().into_response()
    }
    CatchPanicLayer::custom(answer as fn(_) -> Response)
}

/// A browser that asks for a page outside the API (a mistyped dashboard address, an old link) gets
/// the dashboard's error page; every other client the API's JSON error.
fn answer(uri: &Uri, headers: &HeaderMap, api: ApiError, page_detail: &str) -> Response {
    if dashboard::errors::wants_page(uri, headers) {
        let page = ApiError::new(api.status, api.code, page_detail);
        return dashboard::with_secure_headers(dashboard::errors::PageError::Api(page).into_response());
    }
    api.into_response()
}

// `OriginalUri`: the path as asked, whichever router's fallback answers.
async fn not_found(OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    answer(&uri, &headers, ApiError::not_found(), "There is no page at this address")
}

pub(crate) async fn method_not_allowed(OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let api = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method Not Allowed");
    answer(&uri, &headers, api, "This page cannot be used that way")
}

impl FromRequestParts<AppState> for AppState {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(state.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// Collects what the log subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn boom() -> &'static str {
        panic!("the handler fell over")
    }

    async fn fine() -> &'static str {
        "fine"
    }

    async fn send(router: &Router, path: &str) -> (StatusCode, Option<String>, serde_json::Value) {
        let request = Request::get(path).header("x-request-id", "req-panic-1").body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, id, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    // The test runtime is single-threaded, so the panic hook and the handler run on this thread and
    // log to the subscriber set for it here.
    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_the_request_id_logged_once_and_serving_goes_on() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        moltflow_app::telemetry::log_panics();
        let router: Router =
            Router::new().route("/boom", get(boom)).route("/fine", get(fine)).layer(panic_guard()).layer(ObserveLayer);

        let (status, id, body) = send(&router, "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(id.as_deref(), Some("req-panic-1"));
        assert_eq!(body["code"], "internal_error");
        assert_eq!(body["request_id"], "req-panic-1");
        assert!(!body["detail"].as_str().unwrap_or("").contains("fell over"), "the panic message leaked: {body}");

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.matches("the handler fell over").count(), 1, "logged once:\n{log}");
        assert!(log.contains("req-panic-1"), "the log names the request:\n{log}");

        let (status, _, _) = send(&router, "/fine").await;
        assert_eq!(status, StatusCode::OK, "the service keeps serving after a panic");
        let (status, _, _) = send(&router, "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
