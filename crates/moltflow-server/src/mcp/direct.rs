//! Tool calls on `/mcp` run the use cases directly, as the API key that authenticated the MCP
//! request, with an [`Origin`] that says MCP (so audit entries record `"via": "mcp"`). The answer
//! is what the API route would have answered: the same JSON on success, the same error body and
//! status for a [`Failure`](crate::services::failure::Failure) — both come from the same use case
//! and the same mapping in `error.rs`.

use moltflow_types::{CreateApiKeyRequest, RotateApiKeyRequest};
use rmcp::ErrorData;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::handler::ApiAnswer;
use super::tools::ToolSpec;
use crate::error::ApiError;
use crate::extract::parse;
use crate::services::failure::Outcome;
use crate::services::origin::Origin;
use crate::services::principal::Principal;
use crate::state::App;

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
        "list_api_keys" => answer(app.api_keys().list(p).await),
        "create_api_key" => match input::<CreateApiKeyRequest>(args, &["name", "scopes", "expires_in_days"]) {
            Ok(req) => answer(app.api_keys().create(p, req, origin).await),
            Err(refused) => refused,
        },
        "rotate_api_key" => {
            let id = match id(args) {
                Ok(id) => id,
                Err(e) => return Some(Err(e)),
            };
            match input::<RotateApiKeyRequest>(args, &["grace_period_minutes"]) {
                Ok(req) => answer(app.api_keys().rotate(p, &id, req, origin).await),
                Err(refused) => refused,
            }
        }
        "revoke_api_key" => match id(args) {
            Ok(id) => answer(app.api_keys().revoke(p, &id, origin).await.map(|()| Value::Null)),
            Err(e) => return Some(Err(e)),
        },
        _ => return None,
    };
    Some(Ok(answer))
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

/// The `id` argument (the route's path parameter).
fn id(args: &Map<String, Value>) -> Result<String, ErrorData> {
    match args.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(ErrorData::invalid_params("`id` (the API key's id) is required", None)),
    }
}
