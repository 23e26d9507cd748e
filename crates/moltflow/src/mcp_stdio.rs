//! `moltflow mcp`: the MCP server over stdio, what an agent's MCP configuration launches. It
//! reaches the admin API at `MOLTFLOW_API_URL` over HTTP with `MOLTFLOW_API_KEY`, so the key's
//! scopes, the rate limit and the audit log apply exactly as for any API client. Each tool call
//! sends its row's route (`moltflow_server::mcp::tools`), the table `/mcp` runs in process.

use std::sync::Arc;

use moltflow_core::scope::ScopeSet;
use moltflow_server::mcp::handler::{Answer, Backend, McpServer};
use moltflow_server::mcp::tools::ToolSpec;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServiceExt};

use crate::client::Api;
use crate::client::failure::{Class, CliResult, Failure};
use crate::commands::ClientArgs;

struct OverHttp {
    api: Api,
    scopes: ScopeSet,
}

impl Backend for OverHttp {
    async fn scopes(&self, _: &RequestContext<RoleServer>) -> Result<ScopeSet, ErrorData> {
        Ok(self.scopes)
    }

    async fn call(
        &self,
        _: &RequestContext<RoleServer>,
        tool: &'static ToolSpec,
        args: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Answer, ErrorData> {
        let call = tool.route.call(&args)?;
        let method = reqwest::Method::from_bytes(call.method.as_bytes())
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        match self.api.send(method, &call.path, call.body).await {
            Ok(reply) => Ok(Answer::Done(reply.body)),
            Err(f) => match f.raw_body.as_deref().and_then(|raw| serde_json::from_str(raw).ok()) {
                // The API answered with an error: the agent reads it as a failed tool call.
                Some(body) => Ok(Answer::Refused { status: f.status.unwrap_or(500), body }),
                None => Err(ErrorData::internal_error(f.message, None)),
            },
        }
    }
}

pub async fn run(client: &ClientArgs) -> CliResult {
    if client.api_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
        return Err(Failure::new(Class::Auth, "moltflow mcp needs MOLTFLOW_API_KEY (an API key for the agent)"));
    }
    let api = client.api().await?.with_user_agent(crate::client::MCP_USER_AGENT);
    // The key's effective scopes decide which tools the agent is shown.
    let me = api.get("/auth/me").await.or_else(|f| match f.class {
        // A key without `account:read` cannot read /auth/me: it still has the scopes it holds.
        Class::Forbidden => Ok(crate::client::Reply { body: serde_json::Value::Null, text: String::new() }),
        _ => Err(f),
    })?;
    let scopes = match me.body["auth"]["scopes"].as_array() {
        Some(names) => ScopeSet::from_names(names.iter().filter_map(|n| n.as_str())).expanded(),
        None => scopes_by_probing(&api).await?,
    };
    let server = McpServer::new(Arc::new(OverHttp { api, scopes }));
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Failure::new(Class::Server, format!("MCP over stdio: {e}")))?;
    running.waiting().await.map_err(|e| Failure::new(Class::Server, format!("MCP over stdio: {e}")))?;
    Ok(())
}

/// For a key without `account:read` (which `/auth/me` needs): the read scopes it holds, each
/// found by a read of a route that needs it. Write scopes cannot be probed without writing, so
/// such a key sees only read tools; give agent keys `account:read` (the README says so).
const PROBES: &[(&str, &str)] = &[
    ("usage:read", "/usage/current"),
    ("billing:read", "/billing/subscription"),
    ("settings:read", "/tenant/settings"),
    ("members:read", "/tenant/members"),
    ("audit:read", "/audit-logs?limit=1"),
    ("account:manage", "/api-keys"),
];

/// A probe the API did not answer (unreachable, or a redirect to another origin that was not
/// followed) says nothing about the key: it stops the start instead of hiding tools.
async fn scopes_by_probing(api: &Api) -> CliResult<ScopeSet> {
    let mut held = ScopeSet::empty();
    for (name, path) in PROBES {
        let Some(scope) = moltflow_core::Scope::parse(name) else { continue };
        match api.get(path).await {
            Ok(_) => held = held.union(ScopeSet::from_scopes([scope])),
            Err(f) if f.status.is_none() => return Err(f),
            Err(_) => {}
        }
    }
    Ok(held)
}
