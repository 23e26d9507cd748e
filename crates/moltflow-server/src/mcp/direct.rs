//! Tool calls on `/mcp` run the use cases directly, as the API key that authenticated the MCP
//! request, with an [`Origin`] that says MCP (so audit entries record `"via": "mcp"`). The answer
//! is what the API route would have answered: the same JSON on success, the same error body and
//! status for a [`Failure`](moltflow_app::services::failure::Failure) — both come from the same use case
//! and the same mapping in `error.rs`.

use moltflow_types::{CheckoutRequest, CreateApiKeyRequest, RotateApiKeyRequest, UpdateTenantSettings};
use rmcp::ErrorData;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::handler::ApiAnswer;
use super::tools::ToolSpec;
use crate::error::ApiError;
use crate::extract::{QueryParams, parse};
use moltflow_app::App;
use moltflow_app::services::failure::Outcome;
use moltflow_app::services::origin::Origin;
use moltflow_app::services::principal::Principal;
use moltflow_app::services::principal::guards::*;

/// The use case's proof for `$guard`, or the tool call's refusal (the tool table lists the same
/// scope, so a caller only gets here with it; the use case still asks).
macro_rules! proof {
    ($principal:expr, $guard:ident) => {
        match $principal.authorize::<$guard>() {
            Ok(proof) => proof,
            Err(failure) => return Some(Ok(answer::<()>(Err(failure)))),
        }
    };
}

/// Runs `tool` with `args`; `None` for a tool that still goes through the API router. A tool
/// call without an argument that names what to act on is a protocol error, as it is over stdio.
pub async fn run(
    app: &App,
    p: &Principal,
    origin: &Origin,
    tool: &ToolSpec,
    args: &Map<String, Value>,
) -> Option<Result<ApiAnswer, ErrorData>> {
    let answer = match tool.name {
        "list_api_keys" => answer(app.api_keys().list(&proof!(p, AccountManage)).await),
        "create_api_key" => match input::<CreateApiKeyRequest>(args, &["name", "scopes", "expires_in_days"]) {
            Ok(req) => answer(app.api_keys().create(&proof!(p, AccountManage), req, origin).await),
            Err(refused) => refused,
        },
        "rotate_api_key" => {
            let id = match id(args) {
                Ok(id) => id,
                Err(e) => return Some(Err(e)),
            };
            match input::<RotateApiKeyRequest>(args, &["grace_period_minutes"]) {
                Ok(req) => answer(app.api_keys().rotate(&proof!(p, AccountManage), &id, req, origin).await),
                Err(refused) => refused,
            }
        }
        "revoke_api_key" => match id(args) {
            Ok(id) => answer(app.api_keys().revoke(&proof!(p, AccountManage), &id, origin).await.map(|()| Value::Null)),
            Err(e) => return Some(Err(e)),
        },
        "get_tenant_settings" => answer(app.settings().get(&proof!(p, SettingsRead)).await),
        "update_tenant_settings" => match input::<UpdateTenantSettings>(
            args,
            &["allowed_numbers", "require_approval", "ai_consent_enabled", "chat_history_access_enabled"],
        ) {
            Ok(patch) => answer(app.settings().update(&proof!(p, SettingsManage), patch, origin).await),
            Err(refused) => refused,
        },
        "list_members" => answer(app.members().list(&proof!(p, MembersRead)).await),
        "list_audit_logs" => {
            // Read as the route reads its query string, so the `422`s are the route's.
            let query = query_of(args, &["limit", "cursor", "action"]);
            match query.int("limit", 50, 1, 200) {
                Ok(limit) => {
                    let page = app
                        .audit_log()
                        .list(&proof!(p, AuditRead), limit, query.get("cursor"), query.get("action"))
                        .await;
                    match page {
                        Ok(page) => answer(Ok(page)),
                        Err(failure) => refusal(ApiError::from_query(failure)),
                    }
                }
                Err(refused) => refusal(refused),
            }
        }
        "get_subscription" => answer(app.billing().subscription(&proof!(p, BillingRead)).await),
        "list_plans" => answer(Ok(app.billing().plans())),
        "create_checkout_link" => match input::<CheckoutRequest>(args, &["plan_id", "billing_cycle"]) {
            Ok(req) => answer(app.billing().checkout(&proof!(p, BillingManage), req, origin).await),
            Err(refused) => refused,
        },
        "create_portal_link" => answer(app.billing().portal(&proof!(p, BillingManage), None).await),
        "get_usage_current" => answer(app.usage().current(&proof!(p, UsageRead)).await),
        "get_usage_daily" => {
            let query = query_of(args, &["month", "session_id"]);
            let daily = app.usage().daily(&proof!(p, UsageRead), query.get("month"), query.get("session_id")).await;
            query_answer(daily)
        }
        "get_usage_history" => {
            let query = query_of(args, &["months"]);
            query_answer(app.usage().history(&proof!(p, UsageRead), query.get("months")).await)
        }
        _ => return None,
    };
    Some(Ok(answer))
}

/// The outcome of a use case whose input the route reads from the query string (its `422`s are
/// located in the query).
fn query_answer<T: Serialize>(outcome: Outcome<T>) -> ApiAnswer {
    match outcome {
        Ok(value) => answer(Ok(value)),
        Err(failure) => refusal(ApiError::from_query(failure)),
    }
}

/// A use case's outcome as the API would answer it.
fn answer<T: Serialize>(outcome: Outcome<T>) -> ApiAnswer {
    match outcome {
        Ok(value) => ApiAnswer { status: 200, body: serde_json::to_value(value).unwrap_or(Value::Null) },
        Err(failure) => refusal(ApiError::from(failure)),
    }
}

fn refusal(err: ApiError) -> ApiAnswer {
    ApiAnswer { status: err.status.as_u16(), body: err.body() }
}

/// The tool's arguments named in `fields`, read as the route reads its JSON body (same `422`s).
fn input<T: DeserializeOwned>(args: &Map<String, Value>, fields: &[&str]) -> Result<T, ApiAnswer> {
    let body: Map<String, Value> =
        args.iter().filter(|(k, _)| fields.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    parse(Value::Object(body).to_string().as_bytes()).map_err(refusal)
}

/// The tool's arguments named in `names` as the route's query parameters: strings and numbers as
/// they would be written in the query string, anything else left out.
fn query_of(args: &Map<String, Value>, names: &[&str]) -> QueryParams {
    QueryParams(
        names
            .iter()
            .filter_map(|name| match args.get(*name) {
                Some(Value::String(s)) => Some(((*name).to_owned(), s.clone())),
                Some(Value::Number(n)) => Some(((*name).to_owned(), n.to_string())),
                _ => None,
            })
            .collect(),
    )
}

/// The `id` argument (the route's path parameter).
fn id(args: &Map<String, Value>) -> Result<String, ErrorData> {
    match args.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(ErrorData::invalid_params("`id` (the API key's id) is required", None)),
    }
}
