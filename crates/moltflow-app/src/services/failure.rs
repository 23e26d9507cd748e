//! What a use case answers when it does not do what was asked, in the domain's terms. Each way in
//! maps it once: the HTTP API to a status and the contract's JSON (`crate::error`), the dashboard
//! to a message beside the field, MCP to a tool error. Nothing here knows about HTTP.

use std::fmt;

use moltflow_store::StoreError;
use serde_json::{Map, Value};

/// A use case's result.
pub type Outcome<T> = Result<T, Failure>;

#[derive(Debug)]
pub enum Failure {
    /// The input breaks rules; every issue names its field.
    Invalid(Vec<Issue>),
    /// The request as a whole is refused (a spent one-time token, a wrong current password).
    Rejected(Refusal),
    /// No valid credential: the caller must sign in (again).
    Unauthenticated(Refusal),
    /// The caller is known but may not do this.
    Forbidden(Refusal),
    /// Nothing by that id that the caller may see; names what was looked for ("API key").
    NotFound(&'static str),
    /// The input names something that does not exist, with its own code (`plan_not_found`): a
    /// not-found whose client needs to tell it apart from a missing route or id.
    Unknown(Refusal),
    /// The state of things forbids it now (a revoked key, an address already taken).
    Conflict(Refusal),
    /// Too many attempts, or a quota used up: retry after `retry_after_s` seconds.
    Limited { refusal: Refusal, retry_after_s: u64 },
    /// Something this service depends on is away; the same request may work later.
    Unavailable { refusal: Refusal, retry_after_s: Option<u64> },
    /// A provider this service called (Stripe) failed or answered nonsense.
    Upstream(Refusal),
    /// The store failed.
    Store(StoreError),
    /// A bug: logged with its cause where it is answered, never shown.
    Unexpected(anyhow::Error),
}

/// A refusal with a stable machine code, a sentence for people, and optional extra fields the
/// contract adds to the error body (`required_scope`, a quota's `limit` and `used`).
#[derive(Debug)]
pub struct Refusal {
    pub code: &'static str,
    pub detail: String,
    pub extra: Option<Map<String, Value>>,
}

impl Refusal {
    pub fn new(code: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal { code, detail: detail.into(), extra: None }
    }

    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Refusal {
        self.extra.get_or_insert_with(Map::new).insert(field.to_owned(), value.into());
        self
    }
}

impl Failure {
    pub fn invalid(field: &str, message: impl Into<String>, kind: &'static str) -> Failure {
        Failure::Invalid(vec![Issue::new(field, message, kind)])
    }

    pub fn rejected(code: &'static str, detail: impl Into<String>) -> Failure {
        Failure::Rejected(Refusal::new(code, detail))
    }

    pub fn unauthenticated(code: &'static str, detail: impl Into<String>) -> Failure {
        Failure::Unauthenticated(Refusal::new(code, detail))
    }

    /// The caller's credential signs nobody in any more (its user was deleted a moment ago).
    pub fn not_authenticated() -> Failure {
        Failure::unauthenticated("not_authenticated", "Not authenticated")
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Failure {
        Failure::Forbidden(Refusal::new(code, detail))
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Failure {
        Failure::Conflict(Refusal::new(code, detail))
    }

    pub fn limited(code: &'static str, detail: impl Into<String>, retry_after_s: u64) -> Failure {
        Failure::Limited { refusal: Refusal::new(code, detail), retry_after_s: retry_after_s.max(1) }
    }

    pub fn unavailable(code: &'static str, detail: impl Into<String>, retry_after_s: Option<u64>) -> Failure {
        Failure::Unavailable { refusal: Refusal::new(code, detail), retry_after_s }
    }

    pub fn upstream(code: &'static str, detail: impl Into<String>) -> Failure {
        Failure::Upstream(Refusal::new(code, detail))
    }

    pub fn unexpected(cause: impl Into<anyhow::Error>) -> Failure {
        Failure::Unexpected(cause.into())
    }

    /// The machine code a client sees (`validation_error` for invalid input).
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Invalid(_) => "validation_error",
            Failure::NotFound(_) => "not_found",
            Failure::Rejected(r)
            | Failure::Unauthenticated(r)
            | Failure::Forbidden(r)
            | Failure::Conflict(r)
            | Failure::Unknown(r) => r.code,
            Failure::Upstream(r) => r.code,
            Failure::Limited { refusal, .. } | Failure::Unavailable { refusal, .. } => refusal.code,
            // As the ways in answer it: an outage is retried, anything else is our fault.
            Failure::Store(e) if store_unavailable(e) => "database_unavailable",
            Failure::Store(_) => "internal_error",
            Failure::Unexpected(_) => "internal_error",
        }
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Failure {
        Failure::Store(err)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Failure {
        Failure::Unexpected(err)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Invalid(issues) => {
                let shown: Vec<String> = issues.iter().map(|i| format!("{}: {}", i.field, i.message)).collect();
                write!(f, "invalid input ({})", shown.join("; "))
            }
            Failure::NotFound(what) => write!(f, "{what} not found"),
            Failure::Rejected(r)
            | Failure::Unauthenticated(r)
            | Failure::Forbidden(r)
            | Failure::Conflict(r)
            | Failure::Unknown(r) => f.write_str(&r.detail),
            Failure::Upstream(r) => f.write_str(&r.detail),
            Failure::Limited { refusal, .. } | Failure::Unavailable { refusal, .. } => f.write_str(&refusal.detail),
            Failure::Store(_) | Failure::Unexpected(_) => f.write_str("internal error"),
        }
    }
}

/// Whether the database, not the request, is at fault, so that the same request may succeed
/// once it is back (the API answers `503`, not `500`): it is unreachable or cannot write, or no connection could
/// be had within `MOLTFLOW_DB_ACQUIRE_TIMEOUT_MS`. A pool timeout counts: while the database is
/// unreachable the pool keeps trying to connect until that timeout, so that is how an outage
/// shows; a pool saturated by slow queries looks the same to a client (wait, retry), and the log
/// line names both causes.
pub fn store_unavailable(err: &moltflow_store::StoreError) -> bool {
    use moltflow_store::StoreErrorKind as Kind;
    matches!(err.kind(), Kind::Unavailable | Kind::Busy)
}

/// One segment of a field path: a field name or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Field(String),
    Index(usize),
}

/// Where in the input an issue is: `scopes.2` is the third scope; the empty path is the input
/// as a whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// Parses a dotted path; all-digit segments are list indexes.
    pub fn parse(path: &str) -> FieldPath {
        FieldPath(
            path.split('.')
                .filter(|s| !s.is_empty())
                .map(|s| match s.parse::<usize>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Field(s.to_owned()),
                })
                .collect(),
        )
    }

    /// The first field name (the form field an issue belongs beside).
    pub fn head(&self) -> Option<&str> {
        match self.0.first() {
            Some(Segment::Field(name)) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, segment) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(".")?;
            }
            match segment {
                Segment::Field(name) => f.write_str(name)?,
                Segment::Index(i) => write!(f, "{i}")?,
            }
        }
        Ok(())
    }
}

/// One broken rule of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub field: FieldPath,
    pub message: String,
    /// The kind of rule, in the pydantic vocabulary the contract uses (`missing`, `value_error`,
    /// `string_too_long`...).
    pub kind: &'static str,
}

impl Issue {
    pub fn new(field: &str, message: impl Into<String>, kind: &'static str) -> Issue {
        Issue { field: FieldPath::parse(field), message: message.into(), kind }
    }
}

/// Collects the issues of one input, so that a client learns every broken rule at once.
#[derive(Debug, Default)]
pub struct Issues(Vec<Issue>);

impl Issues {
    pub fn fail(&mut self, field: &str, message: impl Into<String>, kind: &'static str) {
        self.0.push(Issue::new(field, message, kind));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok` when no rule was broken, else `Failure::Invalid` with every issue.
    pub fn finish(self) -> Outcome<()> {
        if self.0.is_empty() { Ok(()) } else { Err(Failure::Invalid(self.0)) }
    }
}

/// A display name: trimmed, 1..=max characters, no control characters.
pub fn check_name(issues: &mut Issues, field: &str, raw: &str, max: usize) -> String {
    let name = raw.trim().to_owned();
    let len = name.chars().count();
    if len == 0 {
        issues.fail(field, "String should have at least 1 character", "string_too_short");
    } else if len > max {
        issues.fail(field, format!("String should have at most {max} characters"), "string_too_long");
    } else if name.chars().any(char::is_control) {
        issues.fail(field, "Control characters are not allowed", "value_error");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dotted_path_reads_indexes_as_numbers() {
        let path = FieldPath::parse("events.3.id");
        assert_eq!(path.0, vec![Segment::Field("events".into()), Segment::Index(3), Segment::Field("id".into())]);
        assert_eq!(path.to_string(), "events.3.id");
        assert_eq!(path.head(), Some("events"));
        assert!(FieldPath::parse("").0.is_empty());
    }

    #[test]
    fn issues_finish_with_every_issue() {
        let mut issues = Issues::default();
        assert!(issues.is_empty());
        let name = check_name(&mut issues, "name", "  ", 10);
        check_name(&mut issues, "other", "far too long a name", 10);
        assert_eq!(name, "");
        match issues.finish() {
            Err(Failure::Invalid(found)) => {
                let kinds: Vec<_> = found.iter().map(|i| (i.field.to_string(), i.kind)).collect();
                assert_eq!(kinds, vec![("name".into(), "string_too_short"), ("other".into(), "string_too_long")]);
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}
