//! The MCP server: lists the tools the caller's scopes allow and runs a tool call through
//! whichever [`Backend`] the transport provides (the row's use case for `/mcp`, the row's route
//! over HTTP for `moltflow mcp` over stdio).

use std::future::Future;
use std::sync::Arc;

use moltflow_core::scope::ScopeSet;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::tools::{ToolSpec, all, find};

/// A tool call's answer, as the API would give it: the route's JSON, or the status and error
/// body the route would refuse with. A success carries no status: a tool result does not show one.
pub enum Answer {
    Done(Value),
    Refused { status: u16, body: Value },
}

/// Who calls, and how a tool call reaches the use case.
pub trait Backend: Send + Sync + 'static {
    /// The caller's effective scopes for this MCP request (`Err` when it cannot be established).
    fn scopes(&self, context: &RequestContext<RoleServer>) -> impl Future<Output = Result<ScopeSet, ErrorData>> + Send;

    /// Runs one tool call as the caller (its arguments not yet checked).
    fn call(
        &self,
        context: &RequestContext<RoleServer>,
        tool: &'static ToolSpec,
        args: serde_json::Map<String, Value>,
    ) -> impl Future<Output = Result<Answer, ErrorData>> + Send;
}

pub struct McpServer<B> {
    backend: Arc<B>,
}

impl<B> Clone for McpServer<B> {
    fn clone(&self) -> Self {
        McpServer { backend: self.backend.clone() }
    }
}

impl<B: Backend> McpServer<B> {
    pub fn new(backend: Arc<B>) -> Self {
        McpServer { backend }
    }
}

fn to_tool(spec: &ToolSpec) -> Tool {
    let schema = match spec.input_schema() {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let annotations = ToolAnnotations::new().read_only(spec.read_only).destructive(spec.destructive).open_world(false);
    Tool::new(spec.name, spec.description, schema).annotate(annotations)
}

/// The tools `scopes` may call.
pub fn visible_tools(scopes: ScopeSet) -> Vec<Tool> {
    all().filter(|t| scopes.contains(t.scope)).map(to_tool).collect()
}

/// A call beyond the key's scopes: a protocol error that names the missing scope.
pub fn missing_scope(tool: &ToolSpec) -> ErrorData {
    ErrorData::invalid_params(
        format!(
            "insufficient_scope: the tool {} needs the scope {}, which this API key does not hold",
            tool.name, tool.scope
        ),
        Some(json!({"code": "insufficient_scope", "scope": tool.scope.name(), "tool": tool.name})),
    )
}

/// The API's JSON with a one-line summary first; an API error becomes a tool error the agent reads.
pub fn tool_result(tool: &ToolSpec, answer: Answer) -> CallToolResult {
    let json_text = |body: &Value| if body.is_null() { None } else { Some(ContentBlock::text(body.to_string())) };
    let (status, body) = match answer {
        Answer::Done(body) => {
            let mut content = vec![ContentBlock::text(tool.summarize(&body))];
            content.extend(json_text(&body));
            return CallToolResult::success(content);
        }
        Answer::Refused { status, body } => (status, body),
    };
    let detail = match &body["detail"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| format!("{}: {}", i["loc"], i["msg"].as_str().unwrap_or("invalid")))
            .collect::<Vec<_>>()
            .join("; "),
        _ => "no detail".to_owned(),
    };
    let code = body["code"].as_str().unwrap_or("error");
    let mut content = vec![ContentBlock::text(format!("{} failed: {detail} ({code}, HTTP {status})", tool.name))];
    content.extend(json_text(&body));
    CallToolResult::error(content)
}

impl<B: Backend> ServerHandler for McpServer<B> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("moltflow-admin", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "MoltFlow admin: API keys, usage against plan quotas, billing links, tenant settings, members and the \
                 audit log of one MoltFlow tenant. The tools listed are the ones this API key's scopes allow. Each \
                 result is a one-line summary followed by the API's JSON.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let scopes = self.backend.scopes(&context).await?;
        Ok(ListToolsResult::with_all_items(visible_tools(scopes)))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        find(name).map(to_tool)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = find(&request.name)
            .ok_or_else(|| ErrorData::invalid_params(format!("unknown tool {:?}", request.name), None))?;
        let scopes = self.backend.scopes(&context).await?;
        if !scopes.contains(tool.scope) {
            return Err(missing_scope(tool));
        }
        let args = request.arguments.unwrap_or_default();
        let answer = self.backend.call(&context, tool, args).await?;
        Ok(tool_result(tool, answer).into())
    }
}
