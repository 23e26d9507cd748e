//! A local Stripe: the endpoints the provider calls (customers, Checkout Sessions, Billing
//! Portal sessions, subscription update and delete) in Stripe's documented shapes, over real
//! HTTP. It replays a response for a repeated `Idempotency-Key` like Stripe does, records every
//! request, and can be told to fail. In front of localstripe (`StripeMock::in_front_of`) it
//! answers only what localstripe lacks (Checkout and Portal sessions) and forwards the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
    pub form: Vec<(String, String)>,
}

impl Recorded {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    None,
    /// Answer 500 to the next n requests.
    ServerError(u32),
    /// Answer 429 to the next n requests.
    RateLimited(u32),
    /// Never answer in time.
    Hang,
    /// Answer 404 `resource_missing` to the next request (the object is gone at Stripe).
    NotFound,
    /// Answer every request with something that is not a Stripe object.
    Garbage(Garbage),
    /// Do the work (and remember it under the request's `Idempotency-Key`), then answer too late.
    DoneButSlow,
}

/// What a broken Stripe, or a proxy in front of it, may answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garbage {
    /// `200` with JSON cut short.
    TruncatedJson,
    /// `200` with an HTML page.
    Html,
    /// `200` with valid JSON of another shape.
    WrongShape,
    /// `502` with a proxy's HTML error page.
    ProxyErrorPage,
}

#[derive(Default)]
struct Inner {
    upstream: Option<String>,
    requests: Vec<Recorded>,
    replies: HashMap<String, Value>,
    counter: u64,
    failure: Option<Failure>,
}

#[derive(Clone)]
pub struct StripeMock {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl StripeMock {
    pub async fn start() -> StripeMock {
        Self::start_with(None).await
    }

    /// A front for a real emulator at `upstream` (localstripe).
    pub async fn in_front_of(upstream: &str) -> StripeMock {
        Self::start_with(Some(upstream.trim_end_matches('/').to_owned())).await
    }

    async fn start_with(upstream: Option<String>) -> StripeMock {
        let inner = Arc::new(Mutex::new(Inner { upstream, ..Inner::default() }));
        let app = Router::new()
            .route("/v1/customers", post(handle))
            .route("/v1/checkout/sessions", post(handle))
            .route("/v1/billing_portal/sessions", post(handle))
            .route("/v1/subscriptions/{id}", post(handle_sub).delete(handle_sub))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        StripeMock { base, inner }
    }

    pub fn fail(&self, failure: Failure) {
        self.inner.lock().unwrap().failure = Some(failure);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }
}

async fn handle_sub(
    state: State<Arc<Mutex<Inner>>>,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(state, method, format!("/v1/subscriptions/{id}"), headers, body).await
}

async fn handle(
    state: State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(state, method, uri.path().to_owned(), headers, body).await
}

async fn respond(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let key = header("idempotency-key");
    let failure = {
        let mut g = inner.lock().unwrap();
        g.requests.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            idempotency_key: key.clone(),
            stripe_version: header("stripe-version"),
            form: form.clone(),
        });
        let f = g.failure.unwrap_or(Failure::None);
        g.failure = match f {
            Failure::ServerError(n) if n > 1 => Some(Failure::ServerError(n - 1)),
            Failure::RateLimited(n) if n > 1 => Some(Failure::RateLimited(n - 1)),
            Failure::Hang | Failure::Garbage(_) | Failure::DoneButSlow => Some(f),
            _ => None,
        };
        f
    };
    match failure {
        Failure::ServerError(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": {"type": "api_error", "message": "boom"}})),
            )
                .into_response();
        }
        Failure::RateLimited(_) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"error": {"type": "rate_limit_error", "message": "slow down"}})),
            )
                .into_response();
        }
        Failure::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Failure::NotFound => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such subscription"}})),
            )
                .into_response();
        }
        Failure::Garbage(garbage) => return garbage_response(garbage),
        Failure::None | Failure::DoneButSlow => {}
    }
    let upstream = inner.lock().unwrap().upstream.clone();
    let ours = path == "/v1/checkout/sessions" || path == "/v1/billing_portal/sessions";
    if let (Some(upstream), false) = (upstream, ours) {
        return forward(&upstream, method, &path, &headers, body).await;
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer sk_test_moltflow") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"type": "invalid_request_error", "message": "bad key"}})),
        )
            .into_response();
    }
    let response = reply(&inner, &method, &path, &form, key);
    if failure == Failure::DoneButSlow {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    response
}

fn garbage_response(garbage: Garbage) -> Response {
    let html = [("content-type", "text/html")];
    match garbage {
        Garbage::TruncatedJson => {
            (StatusCode::OK, [("content-type", "application/json")], r#"{"id": "cus_tr"#).into_response()
        }
        Garbage::Html => (StatusCode::OK, html, "<html><body>Welcome</body></html>").into_response(),
        Garbage::WrongShape => axum::Json(json!({"object": "list", "data": [], "has_more": false})).into_response(),
        Garbage::ProxyErrorPage => {
            (StatusCode::BAD_GATEWAY, html, "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response()
        }
    }
}

/// Stripe's answer: the one remembered for a repeated `Idempotency-Key`, else a new object.
fn reply(
    inner: &Mutex<Inner>,
    method: &Method,
    path: &str,
    form: &[(String, String)],
    key: Option<String>,
) -> Response {
    let mut g = inner.lock().unwrap();
    if let Some(reply) = key.as_ref().and_then(|k| g.replies.get(k)) {
        return axum::Json(reply.clone()).into_response();
    }
    g.counter += 1;
    let n = g.counter;
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let reply = match path {
        "/v1/customers" => json!({"id": format!("cus_mock{n}"), "object": "customer", "email": field("email")}),
        "/v1/checkout/sessions" => json!({
            "id": format!("cs_test_mock{n}"), "object": "checkout.session", "mode": "subscription",
            "url": format!("https://checkout.stripe.test/c/pay/cs_test_mock{n}"),
            "customer": field("customer"), "client_reference_id": field("client_reference_id"),
        }),
        "/v1/billing_portal/sessions" => {
            json!({"id": format!("bps_mock{n}"), "object": "billing_portal.session", "url": format!("https://billing.stripe.test/p/session/mock{n}")})
        }
        p if p.starts_with("/v1/subscriptions/") => {
            let id = p.trim_start_matches("/v1/subscriptions/");
            if method == Method::DELETE {
                json!({"id": id, "object": "subscription", "status": "canceled"})
            } else {
                json!({"id": id, "object": "subscription", "status": "active", "cancel_at_period_end": field("cancel_at_period_end") == Some("true".into()), "current_period_end": 1_900_000_000})
            }
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if let Some(k) = key {
        g.replies.insert(k, reply.clone());
    }
    axum::Json(reply).into_response()
}

async fn forward(upstream: &str, method: Method, path: &str, headers: &HeaderMap, body: Bytes) -> Response {
    let mut req = reqwest::Client::new().request(method, format!("{upstream}{path}")).body(body);
    for name in ["authorization", "idempotency-key", "stripe-version", "content-type"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.as_bytes());
        }
    }
    match req.send().await {
        Ok(res) => {
            let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let bytes = res.bytes().await.unwrap_or_default();
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
