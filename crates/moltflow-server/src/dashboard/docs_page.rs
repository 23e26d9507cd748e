//! `GET /docs`: what a newcomer needs besides the dashboard: the API, its OpenAPI document, the
//! health checks, MCP for agents, the command-line client and the documentation files.

use maud::{Markup, html};

use crate::dashboard::layout;

pub async fn page() -> Markup {
    let body = html! {
        p { "MoltFlow Admin " (env!("CARGO_PKG_VERSION")) ": accounts, API keys, billing, usage, tenant settings, members and the audit log, as this dashboard and as a JSON API." }
        h2 { "The API" }
        ul {
            li { a href="/openapi.json" { code { "/openapi.json" } } ": the OpenAPI 3.1 document of every route (import it into your HTTP client)" }
            li { code { "/api/v2" } ": the base of every route (each answers without the prefix too), e.g. " a href="/api/v2/billing/plans" { code { "/api/v2/billing/plans" } } }
            li { a href="/healthz" { code { "/healthz" } } " (alive), " a href="/readyz" { code { "/readyz" } } " (the database answers), " a href="/metrics" { code { "/metrics" } } " (Prometheus), " a href="/.well-known/jwks.json" { code { "/.well-known/jwks.json" } } " (token keys)" }
        }
        h2 { "Agents and the terminal" }
        ul {
            li { code { "/mcp" } ": the Model Context Protocol over streamable HTTP, for AI agents, with an API key (" code { "Authorization: Bearer mf_…" } "); " code { "moltflow mcp" } " serves the same tools over stdio" }
            li { code { "moltflow keys|usage|billing|settings|members|audit|whoami|login" } ": the same binary as a client of this API (" code { "docs/cli.md" } ")" }
        }
        h2 { "Documentation" }
        p { "In the source repository: " code { "README.md" } " (set-up and curl walk-throughs), " code { "docs/API.md" } " (the contract), " code { "docs/dashboard.md" } ", " code { "docs/usage.md" } ", " code { "docs/billing.md" } ", " code { "docs/mail.md" } ", " code { "docs/security.md" } ", " code { "docs/cli.md" } " and " code { "docs/ARCHITECTURE.md" } ". " code { "moltflow serve --help" } " lists every setting." }
        p { a href="/" { "Sign in to the dashboard" } }
    };
    layout::public("MoltFlow API and agents", None, body)
}
