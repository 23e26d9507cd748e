//! MCP tools about the caller's identity.

use super::{ToolSpec, get, no_input, text};

pub const TOOLS: &[ToolSpec] = &[ToolSpec {
    name: "whoami",
    description: "Who this API key acts for: the user, role, tenant and the key's effective scopes.",
    scope: "account:read",
    read_only: true,
    destructive: false,
    schema: no_input,
    call: |_| Ok(get("/auth/me")),
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
