//! `ApiError`: every failure a handler can answer, rendered as the contract's JSON (API.md §2).
//! Unexpected errors are logged with their cause and answered as a bare `500`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moltflow_types::{ErrorBody, ValidationErrorBody, ValidationItem};
use serde_json::Value;

use crate::request_context::current_request_id;
pub use moltflow_app::services::failure::store_unavailable;
use moltflow_app::services::failure::{Failure, Issue, Refusal, Segment};

#[derive(Debug)]
pub enum Detail {
    Message(String),
    Items(Vec<ValidationItem>),
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: Detail,
    pub retry_after: Option<u64>,
    /// Extra fields merged into the body (e.g. `limit`, `used` of a quota error).
    pub extra: Option<serde_json::Map<String, Value>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: Detail::Message(detail.into()), retry_after: None, extra: None }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// An unknown route.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not Found")
    }

    /// An unknown resource (or another tenant's): `404` naming what was looked for.
    pub fn missing(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn too_many(code: &'static str, detail: impl Into<String>, retry_after: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, detail).with_retry_after(retry_after)
    }

    pub fn validation(items: Vec<ValidationItem>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_error",
            detail: Detail::Items(items),
            retry_after: None,
            extra: None,
        }
    }

    /// A single `422` item at `loc` (e.g. `["body", "password"]`).
    pub fn invalid(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Self::validation(vec![item(loc, msg, kind)])
    }

    pub fn not_authenticated() -> Self {
        Self::unauthorized("not_authenticated", "Not authenticated")
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal server error")
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
}

/// A `422` item whose location is all names (`["query", "limit"]`); list indexes come from
/// `located`.
pub fn item(loc: &[&str], msg: impl Into<String>, kind: &str) -> ValidationItem {
    ValidationItem {
        loc: loc.iter().map(|s| Value::String((*s).to_owned())).collect(),
        msg: msg.into(),
        kind: kind.to_owned(),
    }
}

impl ApiError {
    /// The contract's JSON error body (`detail`, `code`, `request_id`, and any extra fields).
    pub fn body(&self) -> Value {
        let request_id = current_request_id();
        let mut body = match &self.detail {
            Detail::Message(detail) => {
                serde_json::to_value(ErrorBody { detail: detail.clone(), code: self.code.to_owned(), request_id })
            }
            Detail::Items(detail) => serde_json::to_value(ValidationErrorBody {
                detail: detail.clone(),
                code: self.code.to_owned(),
                request_id,
            }),
        }
        .unwrap_or(Value::Null);
        if let (Some(extra), Value::Object(map)) = (&self.extra, &mut body) {
            map.extend(extra.clone());
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Logs the cause (never sent to the client) and answers `500`.
fn unexpected(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "unexpected error");
    ApiError::internal()
}

impl From<moltflow_store::StoreError> for ApiError {
    fn from(err: moltflow_store::StoreError) -> Self {
        if store_unavailable(&err) {
            log_unavailable(&err);
            ApiError::database_unavailable()
        } else {
            unexpected(err)
        }
    }
}

impl ApiError {
    /// `503 database_unavailable` with `Retry-After: 1`: the request was not carried out.
    pub fn database_unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "The database is unavailable; retry shortly",
        )
        .with_retry_after(1)
    }
}

/// One `error` line per refused request, with the driver's message (never SQL or values).
pub fn log_unavailable(err: &moltflow_store::StoreError) {
    if err.kind() == moltflow_store::StoreErrorKind::Busy {
        tracing::error!(
            "database unavailable: answering 503 (no database connection within MOLTFLOW_DB_ACQUIRE_TIMEOUT_MS: \
             the database is unreachable, or every connection is busy)"
        );
    } else {
        tracing::error!(error = %err, "database unavailable: answering 503");
    }
}

/// The one place a use case's failure becomes an HTTP answer. Input issues are located in the
/// body; [`ApiError::from_query`] places them in the query string instead.
impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        ApiError::from_failure(failure, "body")
    }
}

impl ApiError {
    /// For routes whose use-case input came from the query string.
    pub fn from_query(failure: Failure) -> Self {
        ApiError::from_failure(failure, "query")
    }

    fn from_failure(failure: Failure, place: &str) -> Self {
        let refused = |status: StatusCode, r: Refusal| ApiError {
            status,
            code: r.code,
            detail: Detail::Message(r.detail),
            retry_after: None,
            extra: r.extra,
        };
        match failure {
            Failure::Invalid(issues) => {
                ApiError::validation(issues.into_iter().map(|issue| located(place, issue)).collect())
            }
            Failure::Rejected(r) => refused(StatusCode::BAD_REQUEST, r),
            Failure::Unauthenticated(r) => refused(StatusCode::UNAUTHORIZED, r),
            Failure::Forbidden(r) => refused(StatusCode::FORBIDDEN, r),
            Failure::NotFound(what) => ApiError::missing(what),
            Failure::Unknown(r) => refused(StatusCode::NOT_FOUND, r),
            Failure::Conflict(r) => refused(StatusCode::CONFLICT, r),
            Failure::Limited { refusal, retry_after_s } => {
                refused(StatusCode::TOO_MANY_REQUESTS, refusal).with_retry_after(retry_after_s)
            }
            Failure::Unavailable { refusal, retry_after_s } => {
                let err = refused(StatusCode::SERVICE_UNAVAILABLE, refusal);
                match retry_after_s {
                    Some(seconds) => err.with_retry_after(seconds),
                    None => err,
                }
            }
            Failure::Upstream(r) => refused(StatusCode::BAD_GATEWAY, r),
            Failure::Store(err) => err.into(),
            Failure::Unexpected(err) => unexpected(format!("{err:#}")),
        }
    }
}

/// An issue as a `422` item: `["body", "scopes", 2]` for the field path `scopes.2`.
fn located(place: &str, issue: Issue) -> ValidationItem {
    let mut loc = vec![Value::String(place.to_owned())];
    loc.extend(issue.field.0.into_iter().map(|segment| match segment {
        Segment::Field(name) => Value::String(name),
        Segment::Index(i) => Value::from(i),
    }));
    ValidationItem { loc, msg: issue.message, kind: issue.kind.to_owned() }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        unexpected(format!("{err:#}"))
    }
}
