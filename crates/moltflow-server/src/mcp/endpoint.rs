//! `/mcp`: the MCP server over streamable HTTP, inside `moltflow serve`. A request needs an API
//! key (`Authorization: Bearer mf_…` or `X-API-Key`), authenticated and rate limited as the API
//! does, once per MCP request; each tool call then runs its use case directly as that key
//! (`direct.rs`), so scopes, validation and the audit log are the API's own. A request whose
//! `Origin` is not this service's own is refused first (`403 origin_not_allowed`, see [`Gate`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::direct::{Direct, McpCaller};
use super::handler::McpServer;
use crate::error::ApiError;
use crate::extract::{Channel, Origin};
use crate::principal::{Credential, Principal};
use crate::state::AppState;

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
    let request_id = crate::request_context::current_request_id();
    parts.extensions.insert(McpCaller { principal, origin, request_id });
    next.run(Request::from_parts(parts, body)).await
}

/// The streamable-HTTP MCP service. Stateless: any node of a deployment answers any request, so
/// no session needs to stick to one node.
pub fn service(state: &AppState) -> StreamableHttpService<McpServer<Direct>, NeverSessionManager> {
    let backend = Arc::new(Direct::new(state.clone()));
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
