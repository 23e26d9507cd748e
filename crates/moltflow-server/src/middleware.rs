//! The outermost layer of every request: request id, a span for its logs, one access-log line,
//! Prometheus counters and latency histograms, and a time limit.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
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
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
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
    let series = RequestSeries::of(method_label(&method), route, status);
    series.requests.increment(1);
    series.duration.record(elapsed.as_secs_f64());
    span.in_scope(|| {
        // Whole microseconds in milliseconds: `37.094`, not `37.094635000000004`.
        tracing::info!(status, latency_ms = elapsed.as_micros() as f64 / 1000.0, "request finished");
    });
    response
}

/// The metric label of a method. Any token is a valid method: only the standard ones are labels
/// of their own, so a client inventing methods cannot grow the metric series without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The request counter and latency histogram of one method, route and status, registered once.
/// Naming a series on each request (label strings, a key hashed and looked up in the registry)
/// was ~5 % of the CPU of a cheap request. Routes are the router's patterns (or `unmatched`),
/// methods and statuses few: the series stay bounded as before.
#[derive(Clone)]
struct RequestSeries {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Series by route, then by (method, status).
type SeriesByRoute = HashMap<String, Vec<((&'static str, u16), RequestSeries)>>;

static SERIES: LazyLock<RwLock<SeriesByRoute>> = LazyLock::new(Default::default);

impl RequestSeries {
    fn of(method: &'static str, route: &str, status: u16) -> RequestSeries {
        let find = |series: &SeriesByRoute| {
            series.get(route)?.iter().find(|(k, _)| *k == (method, status)).map(|(_, s)| s.clone())
        };
        if let Some(found) = find(&SERIES.read().unwrap_or_else(|e| e.into_inner())) {
            return found;
        }
        // Handles registered before the recorder is installed would record nowhere, forever.
        crate::telemetry::metrics_handle();
        let mut series = SERIES.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = find(&series) {
            return found;
        }
        let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
        let made = RequestSeries {
            requests: metrics::counter!("http_requests_total", &labels),
            duration: metrics::histogram!("http_request_duration_seconds", &labels),
        };
        series.entry(route.to_owned()).or_default().push(((method, status), made.clone()));
        made
    }
}
