//! `/mcp`: MCP over streamable HTTP, authenticated by an API key, with the tools its scopes allow.
//! (The official MCP Python SDK drives the same endpoint in `.ci/mcp_check.py`.)

use serde_json::{Value, json};

use crate::common::{TestApp, token};

async fn rpc(
    app: &TestApp,
    key: Option<&str>,
    bearer: Option<&str>,
    method: &str,
    params: Value,
) -> (u16, Value, Option<u32>) {
    let mut req = app
        .client
        .post(format!("{}/mcp", app.base))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let r = app.send(req).await;
    let remaining = r.header("ratelimit-remaining").and_then(|v| v.parse().ok());
    (r.status, r.body, remaining)
}

fn tool_names(body: &Value) -> Vec<String> {
    body["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn mcp_needs_an_api_key() {
    let app = TestApp::spawn().await;
    let pair = app.register("mcp-auth@example.com").await;
    let (status, body, _) = rpc(&app, None, None, "tools/list", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("not_authenticated")), "{body}");
    let (status, body, _) = rpc(&app, None, Some(&token(&pair, "access_token")), "tools/list", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("api_key_required")), "{body}");
    let (status, body, _) = rpc(&app, Some(&format!("mf_{}", "x".repeat(44))), None, "tools/list", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_api_key")), "{body}");
}

#[tokio::test]
async fn a_key_sees_and_calls_only_the_tools_its_scopes_allow() {
    let app = TestApp::spawn().await;
    let pair = app.register_verified("mcp-scopes@example.com").await;
    let access = token(&pair, "access_token");
    let narrow = app.create_key(&access, &["usage:read"]).await["raw_key"].as_str().unwrap().to_owned();
    let wide = app.create_key(&access, &["*"]).await["raw_key"].as_str().unwrap().to_owned();

    let (_, listed, _) = rpc(&app, Some(&narrow), None, "tools/list", json!({})).await;
    assert_eq!(tool_names(&listed), ["get_usage_current", "get_usage_daily", "get_usage_history"]);
    let (_, all, _) = rpc(&app, Some(&wide), None, "tools/list", json!({})).await;
    assert!(tool_names(&all).len() >= 16 && tool_names(&all).contains(&"get_subscription".to_owned()));

    let (status, refused, _) =
        rpc(&app, Some(&narrow), None, "tools/call", json!({"name": "get_subscription", "arguments": {}})).await;
    assert_eq!(status, 200, "a JSON-RPC error travels in a 200: {refused}");
    assert_eq!(refused["error"]["data"]["scope"], "billing:read", "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("billing:read"));

    let (_, usage, _) = rpc(&app, Some(&narrow), None, "tools/call", json!({"name": "get_usage_current"})).await;
    let content = usage["result"]["content"].as_array().unwrap();
    assert!(content[0]["text"].as_str().unwrap().starts_with("Plan free: messages 0/50"), "{usage}");
    let api_json: Value = serde_json::from_str(content[1]["text"].as_str().unwrap()).unwrap();
    assert_eq!(api_json, app.with_key(reqwest::Method::GET, "/usage/current", &narrow, None).await.body);
}

#[tokio::test]
async fn tool_calls_change_state_like_the_api_and_are_audited_and_rate_limited_once() {
    let app = TestApp::spawn().await;
    let pair = app.register_verified("mcp-calls@example.com").await;
    let access = token(&pair, "access_token");
    let key = app.create_key(&access, &["*"]).await["raw_key"].as_str().unwrap().to_owned();

    let call = json!({"name": "update_tenant_settings", "arguments": {"allowed_numbers": ["+5511999999999"], "ai_consent_enabled": true}});
    let (_, first, before) = rpc(&app, Some(&key), None, "tools/call", call.clone()).await;
    assert_eq!(first["result"]["isError"], false, "{first}");
    let (_, _, after) = rpc(&app, Some(&key), None, "tools/call", call).await;
    assert_eq!(after, before.map(|n| n - 1), "one MCP request is one request of the rate limit");

    let settings = app.get("/tenant/settings", Some(&access)).await;
    assert_eq!(settings.body["allowed_numbers"], json!(["+5511999999999"]));
    let audit = app.get("/audit-logs?action=settings.updated", Some(&access)).await;
    let entry = &audit.body["items"][0];
    assert_eq!(entry["details"]["via"], "mcp", "{entry}");

    let (_, bad, _) = rpc(
        &app,
        Some(&key),
        None,
        "tools/call",
        json!({"name": "update_tenant_settings", "arguments": {"allowed_numbers": ["12345"]}}),
    )
    .await;
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    assert!(bad["result"]["content"][0]["text"].as_str().unwrap().contains("allowed_numbers"), "{bad}");
    let unchanged = app.get("/tenant/settings", Some(&access)).await;
    assert_eq!(unchanged.body["allowed_numbers"], json!(["+5511999999999"]));
}

#[tokio::test]
async fn key_tools_run_the_use_cases_as_the_calling_key() {
    let app = TestApp::spawn().await;
    let pair = app.register("mcp-keys@example.com").await;
    let access = token(&pair, "access_token");
    let agent =
        app.create_key(&access, &["account:manage", "usage:read"]).await["raw_key"].as_str().unwrap().to_owned();

    let create = json!({"name": "create_api_key", "arguments": {"name": "reporting", "scopes": ["usage:read"]}});
    let (_, created, _) = rpc(&app, Some(&agent), None, "tools/call", create).await;
    assert_eq!(created["result"]["isError"], false, "{created}");
    let key: Value = serde_json::from_str(created["result"]["content"][1]["text"].as_str().unwrap()).unwrap();
    let raw = key["raw_key"].as_str().unwrap();
    assert_eq!(app.with_key(reqwest::Method::GET, "/usage/current", raw, None).await.status, 200);
    let audit = app.get("/audit-logs?action=api_key.created", Some(&access)).await;
    assert_eq!(audit.body["items"][0]["details"]["via"], "mcp", "{}", audit.body);

    // Nobody hands out more than it holds, through MCP either.
    let wider = json!({"name": "create_api_key", "arguments": {"name": "wider", "scopes": ["billing:manage"]}});
    let (_, refused, _) = rpc(&app, Some(&agent), None, "tools/call", wider).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(refused["result"]["content"][0]["text"].as_str().unwrap().contains("scope_escalation"), "{refused}");
    let bad = json!({"name": "create_api_key", "arguments": {"name": "", "scopes": ["usage:read"]}});
    let (_, invalid, _) = rpc(&app, Some(&agent), None, "tools/call", bad).await;
    assert!(invalid["result"]["content"][0]["text"].as_str().unwrap().contains("name"), "{invalid}");

    let (_, no_id, _) =
        rpc(&app, Some(&agent), None, "tools/call", json!({"name": "revoke_api_key", "arguments": {}})).await;
    assert!(no_id["error"]["message"].as_str().unwrap().contains("id"), "{no_id}");
    let revoke = json!({"name": "revoke_api_key", "arguments": {"id": key["id"]}});
    let (_, revoked, _) = rpc(&app, Some(&agent), None, "tools/call", revoke).await;
    assert_eq!(revoked["result"]["isError"], false, "{revoked}");
    assert_eq!(app.with_key(reqwest::Method::GET, "/usage/current", raw, None).await.status, 401);
}

/// The JSON a tool call answered (its second content block), and whether it was an error.
fn tool_json(answer: &Value) -> (bool, Value) {
    let text = answer["result"]["content"][1]["text"].as_str().unwrap_or_else(|| panic!("no JSON: {answer}"));
    (answer["result"]["isError"] == true, serde_json::from_str(text).unwrap())
}

#[tokio::test]
async fn tenant_tools_answer_what_their_routes_answer_errors_included() {
    let app = TestApp::spawn().await;
    let pair = app.register_verified("mcp-tenant@example.com").await;
    let access = token(&pair, "access_token");
    let key = app.create_key(&access, &["*"]).await["raw_key"].as_str().unwrap().to_owned();
    let call = |name: &str, arguments: Value| json!({"name": name, "arguments": arguments});

    for (tool, path) in [
        ("get_tenant_settings", "/tenant/settings"),
        ("list_members", "/tenant/members"),
        ("list_audit_logs", "/audit-logs"),
    ] {
        let (_, answer, _) = rpc(&app, Some(&key), None, "tools/call", call(tool, json!({}))).await;
        let (failed, body) = tool_json(&answer);
        assert!(!failed, "{answer}");
        assert_eq!(body, app.get(path, Some(&access)).await.body, "{tool}");
    }

    // Query parameters are refused as the route refuses them: the same code, detail and `loc`.
    for (arguments, query) in [
        (json!({"cursor": "not-a-cursor"}), "cursor=not-a-cursor"),
        (json!({"limit": 0}), "limit=0"),
        (json!({"action": "a".repeat(101)}), &*format!("action={}", "a".repeat(101))),
    ] {
        let (_, answer, _) = rpc(&app, Some(&key), None, "tools/call", call("list_audit_logs", arguments)).await;
        let (failed, body) = tool_json(&answer);
        let route = app.get(&format!("/audit-logs?{query}"), Some(&access)).await;
        assert_eq!(route.status, 422, "{}", route.body);
        assert!(failed, "{answer}");
        assert_eq!((&body["code"], &body["detail"]), (&route.body["code"], &route.body["detail"]), "{query}");
    }
}

/// `tools/list` with an `Origin` header as a browser page sends it (none: an MCP client).
async fn list_from(app: &TestApp, key: Option<&str>, origin: Option<&str>) -> crate::common::Resp {
    let mut req = app
        .client
        .post(format!("{}/mcp", app.base))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    app.send(req).await
}

#[tokio::test]
async fn a_page_of_another_origin_is_refused_before_anything_runs_and_clients_without_origin_work() {
    let app = TestApp::spawn().await;
    let pair = app.register_verified("mcp-origin@example.com").await;
    let key = app.create_key(&token(&pair, "access_token"), &["*"]).await["raw_key"].as_str().unwrap().to_owned();
    let port = app.base.rsplit(':').next().unwrap().to_owned();

    // A DNS-rebinding page reaches this port under its own name; a page elsewhere names itself.
    for evil in [
        format!("http://rebind.attacker.example:{port}"),
        "https://attacker.example".to_owned(),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.parse::<u16>().unwrap() ^ 1),
        "null".to_owned(),
        "not an origin".to_owned(),
    ] {
        for key in [Some(key.as_str()), None] {
            let r = list_from(&app, key, Some(&evil)).await;
            r.assert(403, "origin_not_allowed");
            assert!(r.body["detail"].is_string() && r.body["request_id"].is_string(), "{}", r.body);
        }
    }

    let own = list_from(&app, Some(&key), Some(&app.base)).await;
    assert_eq!(own.status, 200, "the service's own origin: {}", own.body);
    assert!(!tool_names(&own.body).is_empty());
    let client = list_from(&app, Some(&key), None).await;
    assert_eq!(client.status, 200, "no Origin: not a browser: {}", client.body);
    list_from(&app, None, None).await.assert(401, "not_authenticated");
}

#[tokio::test]
async fn the_allowed_origins_are_the_public_urls_and_on_a_loopback_bind_the_loopback_names_at_its_port() {
    let public = [("public_url", "https://admin.example.com"), ("bind", "127.0.0.1:8080")];
    let app = TestApp::spawn_with(&public).await;
    let pair = app.register_verified("mcp-origins@example.com").await;
    let key = app.create_key(&token(&pair, "access_token"), &["*"]).await["raw_key"].as_str().unwrap().to_owned();
    for allowed in [
        "https://admin.example.com",
        "https://admin.example.com:443",
        "https://ADMIN.example.com",
        "http://localhost:8080",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
    ] {
        let r = list_from(&app, Some(&key), Some(allowed)).await;
        assert_eq!(r.status, 200, "{allowed}: {}", r.body);
    }
    for refused in ["http://admin.example.com", "https://admin.example.com:8443", "http://localhost:3000"] {
        list_from(&app, Some(&key), Some(refused)).await.assert(403, "origin_not_allowed");
    }

    // Bound to every interface, the service is reached at its public URL: `localhost` in a page's
    // origin is the browser's own machine, not this service.
    let open = TestApp::spawn_with(&[("public_url", "https://admin.example.com"), ("bind", "0.0.0.0:8080")]).await;
    let pair = open.register_verified("mcp-open@example.com").await;
    let key = open.create_key(&token(&pair, "access_token"), &["*"]).await["raw_key"].as_str().unwrap().to_owned();
    assert_eq!(list_from(&open, Some(&key), Some("https://admin.example.com")).await.status, 200);
    list_from(&open, Some(&key), Some("http://localhost:8080")).await.assert(403, "origin_not_allowed");
}

/// What a tool call came to, either way: the JSON it answered, or the status and code it was
/// refused with.
#[derive(Debug, PartialEq)]
enum Seen {
    Done(Value),
    Refused(u16, Value),
}

/// Arguments for one call of `tool`; what it acts on is made fresh for each call. A tool added to
/// the table without a sample here fails the test below.
async fn sample(app: &TestApp, access: &str, tool: &str) -> Value {
    match tool {
        "create_api_key" => json!({"name": "sample", "scopes": ["account:manage"]}),
        "rotate_api_key" | "revoke_api_key" => {
            // Within the calling key's scopes: nobody takes over a key holding more.
            let target = app.create_key(access, &["account:manage"]).await;
            json!({"id": target["id"], "grace_period_minutes": 0})
        }
        "create_checkout_link" => json!({"plan_id": "pro", "billing_cycle": "monthly"}),
        "update_tenant_settings" => json!({"require_approval": true, "ai_consent_enabled": true}),
        "get_usage_daily" => json!({"month": "2026-11"}),
        "get_usage_history" => json!({"months": 3}),
        "list_audit_logs" => json!({"limit": 2, "action": "api_key.created"}),
        "whoami"
        | "get_subscription"
        | "list_plans"
        | "create_portal_link"
        | "get_usage_current"
        | "list_api_keys"
        | "get_tenant_settings"
        | "list_members" => json!({}),
        other => panic!("no sample call for the tool {other}: add one"),
    }
}

/// `value` without what changes between two reads of the same thing (a key's last use).
fn steady(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.remove("last_used_at");
            for v in map.values_mut() {
                *v = steady(v.take());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| *v = steady(v.take())),
        _ => {}
    }
    value
}

/// `value`'s top-level field names, or the value itself when it has none.
fn fields(value: &Value) -> Value {
    value.as_object().map_or_else(|| value.clone(), |m| json!(m.keys().collect::<Vec<_>>()))
}

/// `/mcp` runs each row's use case in process; `moltflow mcp` sends the row's route over HTTP.
/// Each tool, called both ways by a key holding just the scope its row names, answers alike and
/// is never refused for want of a scope: the runner, the route and the row agree.
#[tokio::test]
async fn every_tool_answers_in_process_what_its_route_answers_over_http() {
    use moltflow_server::mcp::tools;

    let app = TestApp::spawn().await;
    let pair = app.register_verified("mcp-table@example.com").await;
    let access = token(&pair, "access_token");
    let mut keys = std::collections::HashMap::new();
    for tool in tools::all() {
        let scope = tool.scope.name();
        if !keys.contains_key(scope) {
            keys.insert(scope, app.create_key(&access, &[scope]).await["raw_key"].as_str().unwrap().to_owned());
        }
        let key = &keys[scope];

        let args = sample(&app, &access, tool.name).await;
        let (_, answer, _) =
            rpc(&app, Some(key), None, "tools/call", json!({"name": tool.name, "arguments": args})).await;
        let result = &answer["result"];
        assert!(result.is_object(), "{}: {answer}", tool.name);
        let json = result["content"][1]["text"].as_str().map_or(Value::Null, |t| serde_json::from_str(t).unwrap());
        let in_process = if result["isError"] == true {
            let line = result["content"][0]["text"].as_str().unwrap_or_default();
            let status = line.rsplit("HTTP ").next().and_then(|s| s.trim_end_matches(')').parse().ok()).unwrap_or(0);
            Seen::Refused(status, json["code"].clone())
        } else {
            Seen::Done(json)
        };

        let args = sample(&app, &access, tool.name).await;
        let call = tool.route.call(args.as_object().unwrap()).unwrap();
        let method = reqwest::Method::from_bytes(call.method.as_bytes()).unwrap();
        let r = app.with_key(method, &call.path, key, call.body).await;
        let over_http = if (200..300).contains(&r.status) {
            Seen::Done(r.body)
        } else {
            Seen::Refused(r.status, r.body["code"].clone())
        };

        for seen in [&in_process, &over_http] {
            assert!(!matches!(seen, Seen::Refused(_, code) if code == "insufficient_scope"), "{}: {seen:?}", tool.name);
        }
        match (in_process, over_http) {
            (Seen::Done(a), Seen::Done(b)) if tool.read_only => assert_eq!(steady(a), steady(b), "{}", tool.name),
            (Seen::Done(a), Seen::Done(b)) => assert_eq!(fields(&a), fields(&b), "{}", tool.name),
            (a, b) => assert_eq!(a, b, "{}", tool.name),
        }
    }
}
