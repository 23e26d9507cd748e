//! `/mcp`'s backend: a tool call runs its row's use case in process, as the API key that
//! authenticated the MCP request, with the [`Origin`] the endpoint built (channel MCP, so audit
//! entries record `"via": "mcp"`). A use case's [`Failure`] becomes the tool error here, once:
//! the status and JSON body the API's route would answer (`error.rs` maps it for the API; a test
//! below keeps the two alike).

use moltflow_app::services::failure::{Failure, Issue, Refusal, Segment, store_unavailable};
use moltflow_app::services::origin::Origin;
use moltflow_app::services::principal::Principal;
use moltflow_core::scope::ScopeSet;
use moltflow_types::{ErrorBody, ValidationErrorBody, ValidationItem};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value};

use super::handler::{Answer, Backend};
use super::tools::{Refused, ToolSpec};
use crate::state::AppState;

/// Who an MCP request acts for, put in its extensions by the endpoint: the key, where the
/// request came from, and the request's id. The MCP service runs tool calls on tasks of their
/// own, out of reach of the connection's peer address and the request's context, so the endpoint
/// reads them first.
#[derive(Clone, Debug)]
pub struct McpCaller {
    pub principal: Principal,
    pub origin: Origin,
    pub request_id: String,
}

pub struct Direct {
    state: AppState,
}

impl Direct {
    pub fn new(state: AppState) -> Direct {
        Direct { state }
    }
}

fn caller(context: &RequestContext<RoleServer>) -> Result<&McpCaller, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<McpCaller>())
        .ok_or_else(|| ErrorData::internal_error("the MCP request was not authenticated", None))
}

impl Backend for Direct {
    async fn scopes(&self, context: &RequestContext<RoleServer>) -> Result<ScopeSet, ErrorData> {
        Ok(caller(context)?.principal.scopes)
    }

    async fn call(
        &self,
        context: &RequestContext<RoleServer>,
        tool: &'static ToolSpec,
        args: Map<String, Value>,
    ) -> Result<Answer, ErrorData> {
        let caller = caller(context)?;
        match tool.run(&self.state, &caller.principal, &caller.origin, args).await {
            Ok(body) => Ok(Answer::Done(body)),
            Err(Refused::Failed(failure)) => Ok(refusal(failure, tool.route.input_place(), &caller.request_id)),
            Err(Refused::Protocol(error)) => Err(error),
        }
    }
}

/// `failure` as the route would answer it; input issues located in `place` (`body`, `query`).
pub fn refusal(failure: Failure, place: &str, request_id: &str) -> Answer {
    let (status, refusal) = match failure {
        Failure::Invalid(issues) => {
            let body = ValidationErrorBody {
                detail: issues.into_iter().map(|issue| located(place, issue)).collect(),
                code: "validation_error".to_owned(),
                request_id: request_id.to_owned(),
            };
            return Answer::Refused { status: 422, body: serde_json::to_value(body).unwrap_or(Value::Null) };
        }
        Failure::Rejected(r) => (400, r),
        Failure::Unauthenticated(r) => (401, r),
        Failure::Forbidden(r) => (403, r),
        Failure::NotFound(what) => (404, Refusal::new("not_found", format!("{what} not found"))),
        Failure::Unknown(r) => (404, r),
        Failure::Conflict(r) => (409, r),
        Failure::Limited { refusal, .. } => (429, refusal),
        Failure::Unavailable { refusal, .. } => (503, refusal),
        Failure::Upstream(r) => (502, r),
        Failure::Store(err) if store_unavailable(&err) => {
            crate::error::log_unavailable(&err);
            (503, Refusal::new("database_unavailable", "The database is unavailable; retry shortly"))
        }
        Failure::Store(err) => internal(err),
        Failure::Unexpected(err) => internal(format!("{err:#}")),
    };
    let body = ErrorBody { detail: refusal.detail, code: refusal.code.to_owned(), request_id: request_id.to_owned() };
    let mut body = serde_json::to_value(body).unwrap_or(Value::Null);
    if let (Some(extra), Value::Object(map)) = (refusal.extra, &mut body) {
        map.extend(extra);
    }
    Answer::Refused { status, body }
}

/// Logs the cause (never shown to the agent) and answers `500`.
fn internal(err: impl std::fmt::Display) -> (u16, Refusal) {
    tracing::error!(error = %err, "unexpected error");
    (500, Refusal::new("internal_error", "Internal server error"))
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

#[cfg(test)]
mod tests {
    use moltflow_app::services::failure::Issue;

    use super::*;
    use crate::error::ApiError;

    /// One failure of each kind the API tells apart (built twice: a failure is not `Clone`).
    fn failures() -> Vec<fn() -> Failure> {
        vec![
            || {
                Failure::Invalid(vec![
                    Issue::new("scopes.2", "Unknown scope", "value_error"),
                    Issue::new("name", "x", "missing"),
                ])
            },
            || Failure::rejected("invalid_token", "Spent"),
            || Failure::not_authenticated(),
            || Failure::Forbidden(Refusal::new("insufficient_scope", "Needs it").with("required_scope", "audit:read")),
            || Failure::NotFound("API key"),
            || Failure::Unknown(Refusal::new("plan_not_found", "No such plan")),
            || Failure::conflict("already_revoked", "Revoked"),
            || Failure::limited("quota_exceeded", "Used up", 30),
            || Failure::unavailable("billing_unavailable", "Away", Some(5)),
            || Failure::unavailable("mail_unavailable", "Away", None),
            || Failure::upstream("stripe_error", "Stripe failed"),
            || Failure::Store(moltflow_store::StoreError::corrupt("a row")),
            || Failure::unexpected(anyhow::anyhow!("a bug")),
        ]
    }

    #[test]
    fn a_failure_is_the_tool_error_the_route_would_answer() {
        // Outside a request, as here, the API's body names the empty request id.
        for (n, failure) in failures().into_iter().enumerate() {
            for place in ["body", "query"] {
                let api = if place == "body" { ApiError::from(failure()) } else { ApiError::from_query(failure()) };
                let Answer::Refused { status, body } = refusal(failure(), place, "") else { panic!("{n}: answered") };
                assert_eq!((status, &body), (api.status.as_u16(), &api.body()), "failure {n} in the {place}");
            }
        }
        let Answer::Refused { body, .. } = refusal(Failure::NotFound("API key"), "body", "req-1") else { panic!() };
        assert_eq!(body["request_id"], "req-1");
    }
}
