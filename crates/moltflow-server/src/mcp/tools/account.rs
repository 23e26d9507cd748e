//! MCP tools about the caller's identity.

use moltflow_app::services::principal::ScopeGuard;
use moltflow_app::services::principal::guards::AccountRead;

use super::{Route, ToolSpec, done, no_input, text};
use crate::routes::auth::me_body;

pub const TOOLS: &[ToolSpec] = &[ToolSpec {
    name: "whoami",
    description: "Who this API key acts for: the user, role, tenant and the key's effective scopes.",
    scope: AccountRead::SCOPE,
    read_only: true,
    destructive: false,
    schema: no_input,
    route: Route::get("/auth/me"),
    run: |call| Box::pin(async move { done(Ok(me_body(call.proof::<AccountRead>()?.principal()))) }),
    summary: |me| {
        format!(
            "{} ({}) in tenant {}; scopes: {}",
            text(&me["email"]),
            text(&me["role"]),
            text(&me["tenant_id"]),
            me["auth"]["scopes"]
                .as_array()
                .map(|s| s.iter().map(text).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        )
    },
}];
