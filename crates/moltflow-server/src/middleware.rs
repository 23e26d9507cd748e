//! The outermost layer of every request: request id, a span for its logs, one access-log line,
//! Prometheus counters and latency histograms, and a time limit.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::auth::rate_limit;
use crate::error::ApiError;
use crate::request_id;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id::pick(req.headers());
    let method = req.method().clone();
    // Any token is a valid method: only the standard ones become a metric label, so a client
    // inventing methods cannot grow the metric series without bound.
    let method_label = if is_standard(&method) { method.to_string() } else { "other".to_owned() };
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut response = request_id::scope(
        id.clone(),
        rate_limit::scope(async {
            let mut response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
                Ok(response) => response,
                Err(_) => {
                    ApiError::new(axum::http::StatusCode::GATEWAY_TIMEOUT, "timeout", "The request took too long")
                        .into_response()
                }
            };
            rate_limit::apply_headers(response.headers_mut());
            response
        }),
    )
    .instrument(span.clone())
    .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let labels = [("method", method_label), ("route", route), ("status", status.to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    span.in_scope(|| {
        // Whole microseconds in milliseconds: `37.094`, not `37.094635000000004`.
        tracing::info!(status, latency_ms = elapsed.as_micros() as f64 / 1000.0, "request finished");
    });
    response
}

fn is_standard(method: &axum::http::Method) -> bool {
    use axum::http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ]
    .contains(method)
}
