//! `GET /`: a small page for whoever opens the service in a browser, pointing to the OpenAPI
//! document, the health checks and the documentation, until the dashboard takes this place.
//! Static HTML (nothing from the request is echoed), no external assets, and a CSP that allows
//! nothing but its one inline style, by hash.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;\
line-height:1.5;color:#1d1d1f}code{background:#f2f2f2;padding:0 .25rem}small{color:#666}";

const BODY: &str = r#"<h1>MoltFlow Admin <small>{version}</small></h1>
<p>The admin API of MoltFlow: accounts, API keys, billing, usage, tenant settings, members and the
audit log. This page is all there is to see in a browser; everything else is JSON.</p>
<h2>The API</h2>
<ul>
<li><a href="openapi.json"><code>/openapi.json</code></a>: the OpenAPI 3.1 document of every route (import it into your HTTP client)</li>
<li><code>/api/v2</code>: the base of every route (each answers without the prefix too), e.g.
<a href="api/v2/billing/plans"><code>/api/v2/billing/plans</code></a></li>
<li><a href="healthz"><code>/healthz</code></a> (alive), <a href="readyz"><code>/readyz</code></a> (the database answers),
<a href="metrics"><code>/metrics</code></a> (Prometheus), <a href=".well-known/jwks.json"><code>/.well-known/jwks.json</code></a> (token keys)</li>
</ul>
<h2>Agents and the terminal</h2>
<ul>
<li><code>/mcp</code>: the Model Context Protocol over streamable HTTP, for AI agents, with an API key
(<code>Authorization: Bearer mf_…</code>); <code>moltflow mcp</code> serves the same tools over stdio</li>
<li><code>moltflow keys|usage|billing|settings|members|audit|whoami|login</code>: the same binary as a client
of this API (<code>docs/cli.md</code>)</li>
</ul>
<h2>Documentation</h2>
<p>In the source repository: <code>README.md</code> (set-up and curl walk-throughs to copy),
<code>docs/API.md</code> (the contract: routes, error codes, limits), <code>docs/usage.md</code>,
<code>docs/billing.md</code>, <code>docs/mail.md</code>, <code>docs/security.md</code>, <code>docs/cli.md</code> and
<code>docs/ARCHITECTURE.md</code>. <code>moltflow serve --help</code> lists every setting.</p>
"#;

static PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>MoltFlow Admin</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{}</main>\n</body>\n</html>\n",
        BODY.replace("{version}", env!("CARGO_PKG_VERSION"))
    )
});

static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

pub async fn index() -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CSP.clone()),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Html(PAGE.as_str()),
    )
        .into_response()
}
