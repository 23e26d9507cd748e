//! The outermost layer of every request: request id, a span for its logs, one access-log line,
//! Prometheus counters and latency histograms, and a time limit.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::error::ApiError;
use crate::request_context::{self, RequestContext};
use crate::request_id;
use moltflow_app::auth::rate_limit::RateInfo;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The layer that wraps every route in [`Observe`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// A route observed: its request id, span, time limit, rate-limit headers, metrics and log line.
///
/// A service of its own rather than `axum::middleware::from_fn`, which clones the whole inner
/// stack into a boxed service for every request (its cost: BENCHMARKS.md, "the request path").
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Observe<S>
where
    S: tower::Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id::pick(req.headers());
        let method = method_label(req.method());
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
        let span = tracing::info_span!("request", request_id = %id, method, route = %route);
        let limited = TimeLimited { route: self.inner.call(req), deadline: started + REQUEST_TIMEOUT, timer: None };
        Observed { scoped: request_context::scope(RequestContext::new(id), limited), span, started, method, matched }
    }
}

pin_project! {
    /// A request being served by its route, inside its span and with its context; once answered,
    /// it is finished as `finish` says.
    ///
    /// A future of its own rather than an `async` block: each `async` wrapper (the context, the
    /// span, the time limit) moved the route's whole future into the next one (BENCHMARKS.md, "the
    /// request path").
    pub struct Observed<F> {
        #[pin]
        scoped: TaskLocalFuture<RequestContext, TimeLimited<F>>,
        span: tracing::Span,
        started: Instant,
        method: &'static str,
        matched: Option<MatchedPath>,
    }
}

impl<F, R> Future for Observed<F>
where
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = {
            let _entered = this.span.enter();
            std::task::ready!(this.scoped.as_mut().poll(cx))
        };
        let route = this.matched.as_ref().map_or("unmatched", MatchedPath::as_str);
        let context = this.scoped.take_value();
        Poll::Ready(Ok(finish(response, context, this.span, *this.started, this.method, route)))
    }
}

/// The answer's headers (rate limit, request id), its metrics and its log line.
fn finish(
    mut response: Response,
    context: Option<RequestContext>,
    span: &tracing::Span,
    started: Instant,
    method: &'static str,
    route: &str,
) -> Response {
    if let Some(context) = context {
        apply_rate_headers(response.headers_mut(), context.rate());
        response.headers_mut().insert(&request_id::HEADER, context.id().header_value());
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    RequestSeries::record(method, route, status, elapsed);
    span.in_scope(|| {
        // Whole microseconds in milliseconds: `37.094`, not `37.094635000000004`.
        tracing::info!(status, latency_ms = elapsed.as_micros() as f64 / 1000.0, "request finished");
    });
    response
}

pin_project! {
    /// The route's answer, or `504 timeout` once `deadline` has passed. The timer is armed the
    /// first time the route waits: most requests are answered at their first poll.
    pub struct TimeLimited<F> {
        #[pin]
        route: F,
        deadline: Instant,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F, R> Future for TimeLimited<F>
where
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
{
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        if let Poll::Ready(answer) = this.route.poll(cx) {
            let Ok(response) = answer;
            return Poll::Ready(response.into_response());
        }
        let deadline = *this.deadline;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", "The request took too long").into_response(),
            ),
            Poll::Pending => Poll::Pending,
        }
    }
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

/// The request counter and latency histogram of one method, route and status, registered once
/// (naming a series on each request means label strings and a registry lookup; see
/// BENCHMARKS.md, "request metrics"). Routes are the router's patterns (or `unmatched`), methods
/// and statuses few: the series stay bounded.
struct RequestSeries {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// One worker thread's series, by route pattern, then method and status.
type LocalSeries = HashMap<Box<str>, HashMap<(&'static str, u16), RequestSeries, Hasher>, Hasher>;
type Hasher = foldhash::fast::RandomState;

thread_local! {
    /// Per thread, so that finding a series takes no lock the workers share.
    static LOCAL_SERIES: std::cell::RefCell<LocalSeries> = Default::default();
}

impl RequestSeries {
    /// Counts a request and records how long it took.
    fn record(method: &'static str, route: &str, status: u16, elapsed: Duration) {
        LOCAL_SERIES.with_borrow_mut(|local| {
            if !local.contains_key(route) {
                local.insert(route.into(), HashMap::default());
            }
            let Some(by_route) = local.get_mut(route) else { return };
            let series = by_route.entry((method, status)).or_insert_with(|| Self::registered(method, route, status));
            series.requests.increment(1);
            series.duration.record(elapsed.as_secs_f64());
        });
    }

    /// The series' handles from the recorder, which gives every thread asking for the same
    /// labels the same series.
    fn registered(method: &'static str, route: &str, status: u16) -> RequestSeries {
        // Handles registered before the recorder is installed would record nowhere, forever.
        moltflow_app::telemetry::metrics_handle();
        let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
        RequestSeries {
            requests: metrics::counter!("http_requests_total", &labels),
            duration: metrics::histogram!("http_request_duration_seconds", &labels),
        }
    }
}

/// Adds `RateLimit-*` headers for the request's rate decision, if its principal was counted.
fn apply_rate_headers(headers: &mut axum::http::HeaderMap, decision: Option<RateInfo>) {
    if let Some(info) = decision {
        headers.insert("ratelimit-limit", axum::http::HeaderValue::from(info.limit));
        headers.insert("ratelimit-remaining", axum::http::HeaderValue::from(info.remaining));
        headers.insert("ratelimit-reset", axum::http::HeaderValue::from(info.reset));
    }
}
