//! What went wrong in a CLI command, and the exit code each class of failure gets, so that a
//! script (or an agent) can tell "not signed in" from "not found" without parsing text.

use std::fmt;
use std::process::ExitCode;

use serde_json::Value;

/// Classes of failure, each with its own exit code (documented in the README's CLI section).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The command line or the request body was wrong (`400`, `422`, a bad flag).
    Usage,
    /// No credential, or a bad, expired or revoked one (`401`).
    Auth,
    /// Authenticated but not allowed (`403`).
    Forbidden,
    NotFound,
    Conflict,
    /// Rate limit or plan quota (`429`).
    Limited,
    /// The server failed or could not be reached (`5xx`, connection errors, unreadable answers, a
    /// redirect to another origin).
    Server,
}

impl Class {
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Usage => 2,
            Class::Auth => 3,
            Class::Forbidden => 4,
            Class::NotFound => 5,
            Class::Conflict => 6,
            Class::Limited => 7,
            Class::Server => 8,
        }
    }

    pub fn from_status(status: u16) -> Class {
        match status {
            401 => Class::Auth,
            403 => Class::Forbidden,
            404 | 405 => Class::NotFound,
            409 => Class::Conflict,
            429 => Class::Limited,
            400..=499 => Class::Usage,
            _ => Class::Server,
        }
    }
}

#[derive(Debug)]
pub struct Failure {
    pub class: Class,
    /// What to print on stderr.
    pub message: String,
    /// The API's error body as it came, printed unchanged with `--json`.
    pub raw_body: Option<String>,
    /// The HTTP status when the API answered.
    pub status: Option<u16>,
}

impl Failure {
    pub fn new(class: Class, message: impl Into<String>) -> Failure {
        Failure { class, message: message.into(), raw_body: None, status: None }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Class::Usage, message)
    }

    pub fn not_signed_in() -> Failure {
        Failure::new(Class::Auth, "not signed in: set MOLTFLOW_API_KEY to an API key, or run `moltflow login`")
    }

    /// A non-2xx answer of the API: its `detail` and `code`, and for `429` when to retry.
    pub fn from_api(status: u16, body: &Value, raw: String, retry_after: Option<&str>) -> Failure {
        let code = body["code"].as_str().unwrap_or("http_error");
        let detail = match &body["detail"] {
            Value::String(s) => s.clone(),
            Value::Array(items) => items.iter().map(describe_validation_item).collect::<Vec<_>>().join("; "),
            _ => format!("HTTP {status}"),
        };
        let mut message = format!("{detail} (code: {code}, HTTP {status})");
        if let Some(after) = retry_after {
            message.push_str(&format!("; retry after {after} s"));
        }
        if let Some(id) = body["request_id"].as_str() {
            message.push_str(&format!(" [request {id}]"));
        }
        Failure { class: Class::from_status(status), message, raw_body: Some(raw), status: Some(status) }
    }

    pub fn network(err: &reqwest::Error, url: &str) -> Failure {
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            if let Some(other) = cause.downcast_ref::<OtherOrigin>() {
                return Failure::new(Class::Server, other.to_string());
            }
            source = cause.source();
        }
        let why = if err.is_connect() {
            "cannot connect".to_owned()
        } else if err.is_timeout() {
            "timed out".to_owned()
        } else {
            err.to_string()
        };
        Failure::new(
            Class::Server,
            format!("{why}: {url} (is the service running? set MOLTFLOW_API_URL to its /api/v2 address)"),
        )
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.class.exit_code())
    }
}

/// The API answered with a redirect to another origin, which the client does not follow.
#[derive(Debug)]
pub struct OtherOrigin {
    pub from: String,
    pub to: String,
}

impl fmt::Display for OtherOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server at {} redirected to another origin, {}; not followed, so your credentials and request \
             were not sent there (if the service lives there, set MOLTFLOW_API_URL to its /api/v2 address)",
            self.from, self.to
        )
    }
}

impl std::error::Error for OtherOrigin {}

/// `body.scopes.0: Unknown scope "x"` from a FastAPI-style `{loc, msg}` item.
fn describe_validation_item(item: &Value) -> String {
    let loc: Vec<String> = item["loc"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .map(|p| match p {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let msg = item["msg"].as_str().unwrap_or("invalid");
    if loc.is_empty() { msg.to_owned() } else { format!("{}: {msg}", loc.join(".")) }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type CliResult<T = ()> = Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_status_class_has_its_exit_code() {
        let codes: Vec<u8> =
            [422, 401, 403, 404, 409, 429, 500, 503].iter().map(|s| Class::from_status(*s).exit_code()).collect();
        assert_eq!(codes, [2, 3, 4, 5, 6, 7, 8, 8]);
    }

    #[test]
    fn validation_errors_name_their_fields() {
        let body = json!({"detail": [{"loc": ["body", "scopes", 0], "msg": "Unknown scope", "type": "value_error"}],
                          "code": "validation_error", "request_id": "r1"});
        let f = Failure::from_api(422, &body, body.to_string(), None);
        assert_eq!(f.message, "body.scopes.0: Unknown scope (code: validation_error, HTTP 422) [request r1]");
        assert_eq!(f.class, Class::Usage);
    }
}
