//! `/mcp`: the MCP server over streamable HTTP, inside `moltflow serve`. A request needs an API
//! key (`Authorization: Bearer mf_…` or `X-API-Key`), authenticated and rate limited as the API
//! does; each tool call then runs its use case directly as that key (`direct.rs`), so scopes,
//! validation and the audit log are the API's own. `whoami` alone runs the `/auth/me` route in
//! process, whose body is rendered and cached by the authentication layer. A request whose
//! `Origin` is not this service's own is refused first (`403 origin_not_allowed`, see [`Gate`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use moltflow_core::scope::ScopeSet;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value};
use tower::ServiceExt;

use super::direct;
use super::handler::{ApiAnswer, Backend, McpServer};
use super::tools::ToolSpec;
use crate::error::ApiError;
use crate::extract::{Channel, Origin};
use crate::principal::{Credential, Principal};
use crate::state::AppState;

/// Marks a request made by an MCP tool call: its audit entries say `via: mcp`, and the rate
/// limit was already charged for the MCP request that carried it.
#[derive(Clone, Copy, Debug)]
pub struct ViaMcp;

/// The key that authenticated an MCP request and where it came from, put in the request's
/// extensions by [`require_api_key`].
#[derive(Clone, Debug)]
struct McpCaller {
    principal: Principal,
    origin: Origin,
}

/// The bodies a tool may read back; larger answers are an error rather than unbounded memory.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Runs tool calls on the use cases (or, for the rest, through the API router in process).
pub struct InProcess {
    state: AppState,
    api: Router,
}

fn parts(context: &RequestContext<RoleServer>) -> Result<&axum::http::request::Parts, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .ok_or_else(|| ErrorData::internal_error("the MCP request lost its HTTP parts", None))
}

impl Backend for InProcess {
    async fn scopes(&self, context: &RequestContext<RoleServer>) -> Result<ScopeSet, ErrorData> {
        parts(context)?
            .extensions
            .get::<McpCaller>()
            .map(|c| c.principal.scopes)
            .ok_or_else(|| ErrorData::internal_error("the MCP request was not authenticated", None))
    }

    async fn call(
        &self,
        context: &RequestContext<RoleServer>,
        tool: &'static ToolSpec,
        args: Map<String, Value>,
    ) -> Result<ApiAnswer, ErrorData> {
        let outer = parts(context)?;
        let caller = outer
            .extensions
            .get::<McpCaller>()
            .ok_or_else(|| ErrorData::internal_error("the MCP request was not authenticated", None))?;
        if let Some(answer) = direct::run(&self.state, &caller.principal, &caller.origin, tool, &args).await {
            return answer;
        }
        let call = tool.api_call(&args).map_err(|why| ErrorData::invalid_params(why, None))?;
        let mut request =
            Request::builder().method(call.method).uri(format!("{}{}", crate::routes::API_PREFIX, call.path));
        for name in [&header::AUTHORIZATION, &header::USER_AGENT, &crate::principal::X_API_KEY] {
            if let Some(v) = outer.headers.get(name) {
                request = request.header(name, v.clone());
            }
        }
        if let Some(id) = outer.headers.get("x-request-id") {
            request = request.header("x-request-id", id.clone());
        }
        let body = match call.body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        if let Some(peer) = outer.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
            request.extensions_mut().insert(*peer);
        }
        request.extensions_mut().insert(ViaMcp);
        let response = self.api.clone().oneshot(request).await.map_err(|e| match e {})?;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| ErrorData::internal_error(format!("reading the API's answer: {e}"), None))?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok(ApiAnswer { status, body })
    }
}

/// What `/mcp` checks before it serves a request: the state, and the origins a browser page
/// may call it from.
#[derive(Clone)]
pub struct Gate {
    state: AppState,
    origins: Arc<[url::Origin]>,
}

impl Gate {
    pub fn new(state: &AppState) -> Gate {
        Gate { state: state.clone(), origins: allowed_origins(&state.config.server).into() }
    }
}

/// This service's own origins: the public URL's, and on a loopback bind the loopback names at the
/// bound port (a developer's page or inspector on `http://localhost:8080` is this service).
/// Nothing else: a DNS-rebinding page reaches a loopback or private address under its own
/// host name, and its `Origin` names that host.
fn allowed_origins(server: &moltflow_app::config::ServerConfig) -> Vec<url::Origin> {
    let mut urls = vec![server.public_url.clone()];
    if server.binds_loopback() {
        let port = server.bind.port();
        urls.extend(["127.0.0.1", "localhost", "[::1]"].map(|host| format!("http://{host}:{port}")));
    }
    urls.iter().filter_map(|u| url::Url::parse(u).ok()).map(|u| u.origin()).collect()
}

/// Whether a present `Origin` header names one of `allowed` (scheme, host and port; a default
/// port written or not). `null` and anything unparsable are refused.
fn origin_allowed(value: &HeaderValue, allowed: &[url::Origin]) -> bool {
    let Some(url) = value.to_str().ok().and_then(|v| url::Url::parse(v).ok()) else { return false };
    let origin = url.origin();
    origin.is_tuple() && allowed.contains(&origin)
}

/// Refuses a browser's cross-origin request (the MCP transport's rule against DNS rebinding),
/// then authenticates an MCP request as the API does; only API keys are accepted (an agent holds
/// a key, and a key's scopes decide which tools it sees). Requests without `Origin` are not from
/// a web page (MCP clients, the CLI) and pass.
pub async fn require_api_key(gate: axum::extract::State<Gate>, request: Request, next: Next) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !origin_allowed(origin, &gate.origins)
    {
        return ApiError::forbidden("origin_not_allowed", "Requests from another site's pages are not allowed here")
            .into_response();
    }
    let state = &gate.state;
    let (mut parts, body) = request.into_parts();
    let principal = match Principal::from_request_parts(&mut parts, state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if !matches!(principal.credential, Credential::ApiKey { .. }) {
        return ApiError::unauthorized(
            "api_key_required",
            "The MCP endpoint takes an API key (X-API-Key or Bearer mf_…)",
        )
        .into_response();
    }
    let origin = match Origin::from_request_parts(&mut parts, state).await {
        Ok(origin) => Origin { channel: Channel::Mcp, ..origin },
        Err(e) => return e.into_response(),
    };
    parts.extensions.insert(McpCaller { principal, origin });
    // The MCP service may run a tool call on a task of its own, out of the connection's reach.
    next.run(crate::http_server::with_connect_info(Request::from_parts(parts, body))).await
}

/// The streamable-HTTP MCP service over `api` (the API router without `/mcp`). Stateless: any
/// node of a deployment answers any request, so no session needs to stick to one node.
pub fn service(state: &AppState, api: Router) -> StreamableHttpService<McpServer<InProcess>, NeverSessionManager> {
    let backend = Arc::new(InProcess { state: state.clone(), api });
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(url) = url::Url::parse(&state.config.server.public_url)
        && let Some(host) = url.host_str()
    {
        hosts.push(host.trim_matches(['[', ']']).to_owned());
    }
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(hosts);
    StreamableHttpService::new(
        move || Ok(McpServer::new(backend.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
