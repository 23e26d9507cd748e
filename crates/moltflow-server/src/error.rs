//! `ApiError`: every failure a handler can answer, rendered as the contract's JSON (API.md §2).
//! Unexpected errors are logged with their cause and answered as a bare `500`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moltflow_types::{ErrorBody, ValidationErrorBody, ValidationItem};
use serde_json::Value;

use crate::request_id::current_request_id;

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

/// One validation item.
pub fn item(loc: &[&str], msg: impl Into<String>, kind: &str) -> ValidationItem {
    ValidationItem {
        loc: loc.iter().map(|s| Value::String((*s).to_owned())).collect(),
        msg: msg.into(),
        kind: kind.to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        let mut body = match self.detail {
            Detail::Message(detail) => {
                serde_json::to_value(ErrorBody { detail, code: self.code.to_owned(), request_id })
            }
            Detail::Items(detail) => {
                serde_json::to_value(ValidationErrorBody { detail, code: self.code.to_owned(), request_id })
            }
        }
        .unwrap_or(Value::Null);
        if let (Some(extra), Value::Object(map)) = (self.extra, &mut body) {
            map.extend(extra);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
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

impl From<moltflow_store::DbError> for ApiError {
    fn from(err: moltflow_store::DbError) -> Self {
        if database_unavailable(&err) {
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

/// One `error` line per failed request, with the driver's message (never SQL or values).
pub fn log_unavailable(err: &moltflow_store::DbError) {
    match err {
        moltflow_store::DbError::PoolTimedOut => tracing::error!(
            "database unavailable: answering 503 (no database connection within MOLTFLOW_DB_ACQUIRE_TIMEOUT_MS: \
             the database is unreachable, or every connection is busy)"
        ),
        other => tracing::error!(error = %other, "database unavailable: answering 503"),
    }
}

/// Whether the database, not the request, is at fault: the connection is gone or refused, none
/// could be had within the acquire timeout, or the database cannot write (SQLite read-only, disk
/// full, I/O error; PostgreSQL shutting down, out of connections or disk). The request may
/// succeed once it is back, so it is `503`, not `500`.
///
/// A pool timeout counts too: while the database is unreachable the pool keeps trying to connect
/// until the acquire timeout, so that is how an outage shows; a pool saturated by slow queries
/// looks the same to a client (wait, retry), and the log line says which it may be.
pub fn database_unavailable(err: &moltflow_store::DbError) -> bool {
    use moltflow_store::DbError as E;
    match err {
        E::Io(_) | E::Tls(_) | E::PoolClosed | E::PoolTimedOut | E::WorkerCrashed | E::Protocol(_) => true,
        E::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code.len() == 5 {
                // PostgreSQL SQLSTATE classes: 08 connection, 53 insufficient resources (disk
                // full, too many connections), 57P operator intervention (shutting down).
                code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
            } else {
                // SQLite (extended) result codes, by primary code: BUSY 5, LOCKED 6, READONLY 8,
                // IOERR 10, FULL 13, CANTOPEN 14.
                code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
            }
        }
        _ => false,
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        unexpected(format!("{err:#}"))
    }
}
