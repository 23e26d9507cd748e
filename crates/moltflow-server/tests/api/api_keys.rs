use std::time::Duration;

use moltflow_core::secret::sha256_hex;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, app_with_owner, token};

pub fn raw(key: &Value) -> String {
    token(key, "raw_key")
}

#[tokio::test]
async fn create_shows_the_secret_once_and_stores_only_its_hash() {
    let (app, owner, at) = app_with_owner().await;
    let r = app
        .post(
            "/api-keys",
            json!({"name": "outreach-bot", "scopes": ["messages:send", "custom-groups:manage", "bulk-send:manage"], "expires_in_days": 90}),
            Some(&at),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = &r.body;
    let raw_key = raw(key);
    assert!(raw_key.starts_with("mf_") && raw_key.len() >= 43, "{raw_key}");
    assert!(raw_key[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(key["key_prefix"].as_str().unwrap(), &raw_key[..7]);
    assert_eq!(key["scopes"], json!(["messages:send", "custom-groups:manage", "bulk-send:manage"]));
    assert_eq!(key["is_active"], true);
    assert_eq!(key["created_by"], owner["user"]["id"]);
    assert!(key["expires_at"].is_string() && key["revoked_at"].is_null() && key["last_used_at"].is_null());
    for field in [
        "id",
        "name",
        "key_prefix",
        "scopes",
        "expires_at",
        "created_at",
        "last_used_at",
        "is_active",
        "revoked_at",
        "created_by",
    ] {
        assert!(key.get(field).is_some(), "{field}");
    }

    let id = key["id"].as_str().unwrap();
    let fetched = app.get(&format!("/api-keys/{id}"), Some(&at)).await;
    assert_eq!(fetched.status, 200);
    assert!(fetched.body.get("raw_key").is_none(), "raw key shown again");
    let listed = app.get("/api-keys", Some(&at)).await;
    assert!(!listed.body.to_string().contains(&raw_key));

    assert_eq!(app.count_with("SELECT COUNT(*) FROM api_keys WHERE key_hash = $1", &[&sha256_hex(&raw_key)]).await, 1);
    assert_eq!(
        app.count_with(
            "SELECT COUNT(*) FROM api_keys WHERE key_hash = $1 OR scopes LIKE '%' || $1 || '%'",
            &[&raw_key]
        )
        .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'api_key.created'").await, 1);
}

#[tokio::test]
async fn a_key_authenticates_by_header_or_bearer() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let key = app.create_key(&token(&owner, "access_token"), &["account:read", "messages:send"]).await;
    let raw_key = raw(&key);
    for r in [app.with_key(Method::GET, "/auth/me", &raw_key, None).await, app.get("/auth/me", Some(&raw_key)).await] {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["auth"]["method"], "api_key");
        assert_eq!(r.body["auth"]["api_key_id"], key["id"]);
        assert_eq!(r.body["auth"]["session_id"], Value::Null);
        assert_eq!(r.body["auth"]["scopes"], json!(["messages:send", "account:read"]));
        assert_eq!(r.body["email"], "owner@example.com");
    }
}

#[tokio::test]
async fn list_is_newest_first_and_keeps_revoked_keys() {
    let (app, _, at) = app_with_owner().await;
    let first = app.create_key(&at, &["messages:send"]).await;
    let second = app.create_key(&at, &["messages:read"]).await;
    let del = app
        .send(app.client.delete(app.url(&format!("/api-keys/{}", first["id"].as_str().unwrap()))).bearer_auth(&at))
        .await;
    assert_eq!(del.status, 204);
    let list = app.get("/api-keys", Some(&at)).await.body;
    let ids: Vec<&Value> = list.as_array().unwrap().iter().map(|k| &k["id"]).collect();
    assert_eq!(ids, vec![&second["id"], &first["id"]]);
    assert_eq!(list[1]["is_active"], false);
    assert!(list[1]["revoked_at"].is_string());
    assert_eq!(list[0]["is_active"], true);
}

/// Every route this service guards with a scope, and the scope it needs.
const GUARDED: &[(&str, &str, &str)] = &[
    ("GET", "/auth/me", "account:read"),
    ("GET", "/api-keys", "account:manage"),
    ("POST", "/api-keys", "account:manage"),
    ("GET", "/api-keys/scopes", "account:manage"),
    ("GET", "/api-keys/{id}", "account:manage"),
    ("DELETE", "/api-keys/{id}", "account:manage"),
    ("POST", "/api-keys/{id}/rotate", "account:manage"),
    ("GET", "/tenant/settings", "settings:read"),
    ("PATCH", "/tenant/settings", "settings:manage"),
    ("GET", "/tenant/consents", "audit:read"),
    ("GET", "/tenant/members", "members:read"),
    ("PATCH", "/tenant/members/{id}", "members:manage"),
    ("DELETE", "/tenant/members/{id}", "members:manage"),
    ("GET", "/audit-logs", "audit:read"),
    ("GET", "/tenant/invitations", "members:read"),
    ("POST", "/tenant/invitations", "members:manage"),
    ("DELETE", "/tenant/invitations/{id}", "members:manage"),
    ("GET", "/users/me", "account:read"),
    ("POST", "/usage/events", "usage:write"),
    ("POST", "/usage/consume", "usage:write"),
    ("PUT", "/usage/gauges", "usage:write"),
    ("GET", "/usage/current", "usage:read"),
    ("GET", "/usage/history", "usage:read"),
    ("GET", "/usage/daily", "usage:read"),
    ("PATCH", "/users/me", "account:manage"),
    ("GET", "/billing/subscription", "billing:read"),
    ("POST", "/billing/checkout", "billing:manage"),
    ("POST", "/billing/portal", "billing:manage"),
    ("POST", "/billing/cancel", "billing:manage"),
];

#[tokio::test]
async fn every_guarded_route_refuses_a_key_without_its_scope() {
    let (app, _, at) = app_with_owner().await;
    let target = app.create_key(&at, &["messages:read"]).await;
    let id = target["id"].as_str().unwrap();
    let narrow = raw(&app.create_key(&at, &["messages:send"]).await);
    for (method, path, scope) in GUARDED {
        let path = path.replace("{id}", id);
        let body = (*method != "GET" && *method != "DELETE").then(|| json!({"name": "x", "scopes": ["messages:send"]}));
        let r = app.with_key(method.parse().unwrap(), &path, &narrow, body).await;
        r.assert(403, "insufficient_scope");
        assert!(r.body["detail"].as_str().unwrap().contains(scope), "{method} {path}: {}", r.body);
        assert_eq!(r.body["required_scope"], *scope);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NOT NULL").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys").await, 2);
}

#[tokio::test]
async fn manage_implies_read() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let key = raw(&app.create_key(&token(&owner, "access_token"), &["account:manage"]).await);
    assert_eq!(app.with_key(Method::GET, "/auth/me", &key, None).await.status, 200);
}

#[tokio::test]
async fn nobody_grants_a_scope_they_do_not_hold() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let mat = token(&member, "access_token");
    let r = app.post("/api-keys", json!({"name": "x", "scopes": ["settings:manage"]}), Some(&mat)).await;
    r.assert(403, "scope_escalation");
    assert!(r.body["detail"].as_str().unwrap().contains("settings:manage"));
    app.post("/api-keys", json!({"name": "x", "scopes": ["*"]}), Some(&mat)).await.assert(403, "scope_escalation");
    assert_eq!(
        app.post("/api-keys", json!({"name": "x", "scopes": ["messages:send", "settings:read"]}), Some(&mat))
            .await
            .status,
        201
    );

    // A key that may manage keys cannot mint a wider one.
    let key = raw(&app.create_key(&token(&owner, "access_token"), &["account:manage", "messages:send"]).await);
    let r = app.with_key(Method::POST, "/api-keys", &key, Some(json!({"name": "y", "scopes": ["*"]}))).await;
    r.assert(403, "scope_escalation");
    let r =
        app.with_key(Method::POST, "/api-keys", &key, Some(json!({"name": "y", "scopes": ["messages:send"]}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys").await, 3);
}

#[tokio::test]
async fn members_manage_only_their_own_keys() {
    let (app, owner, oat) = app_with_owner().await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let mat = token(&member, "access_token");
    let owners_key = app.create_key(&oat, &["messages:send"]).await;
    let members_key = app.create_key(&mat, &["messages:send"]).await;
    let list = app.get("/api-keys", Some(&mat)).await.body;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], members_key["id"]);
    let oid = owners_key["id"].as_str().unwrap();
    app.get(&format!("/api-keys/{oid}"), Some(&mat)).await.assert(404, "not_found");
    let del = app.send(app.client.delete(app.url(&format!("/api-keys/{oid}"))).bearer_auth(&mat)).await;
    del.assert(404, "not_found");
    app.post(&format!("/api-keys/{oid}/rotate"), json!({}), Some(&mat)).await.assert(404, "not_found");
    // The owner sees both.
    assert_eq!(app.get("/api-keys", Some(&oat)).await.body.as_array().unwrap().len(), 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").await, 2);
}

#[tokio::test]
async fn another_tenants_key_is_not_found() {
    let app = TestApp::spawn().await;
    let a = app.register("a@example.com").await;
    let b = app.register("b@example.com").await;
    let key = app.create_key(&token(&a, "access_token"), &["messages:send"]).await;
    let id = key["id"].as_str().unwrap();
    let bat = token(&b, "access_token");
    app.get(&format!("/api-keys/{id}"), Some(&bat)).await.assert(404, "not_found");
    app.send(app.client.delete(app.url(&format!("/api-keys/{id}"))).bearer_auth(&bat)).await.assert(404, "not_found");
    app.post(&format!("/api-keys/{id}/rotate"), json!({}), Some(&bat)).await.assert(404, "not_found");
    app.get("/api-keys/not-a-uuid", Some(&bat)).await.assert(404, "not_found");
    assert!(app.get("/api-keys", Some(&bat)).await.body.as_array().unwrap().is_empty());
    assert_eq!(app.with_key(Method::GET, "/auth/me", &raw(&key), None).await.status, 403, "key lacks account:read");
}

#[tokio::test]
async fn bad_create_requests_write_nothing() {
    let (app, _, at) = app_with_owner().await;
    let long = "n".repeat(10_000);
    let cases = [
        json!({"name": "", "scopes": ["messages:send"]}),
        json!({"name": long, "scopes": ["messages:send"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x"}),
        json!({"name": "x", "scopes": ["messages:fly"]}),
        json!({"name": "x", "scopes": ["messages:send", "messages:send"]}),
        json!({"name": "x", "scopes": "messages:send"}),
        json!({"name": "x", "scopes": [1]}),
        json!({"name": "x", "scopes": ["messages:send"], "expires_in_days": 0}),
        json!({"name": "x", "scopes": ["messages:send"], "expires_in_days": 3651}),
        json!({"name": "x", "scopes": ["messages:send"], "expires_in_days": -1}),
        json!({"name": "x", "scopes": ["messages:send"], "expires_in_days": "90"}),
        json!({"name": "x", "scopes": ["messages:send"], "expires_in_days": 1e9}),
        json!({"name": "x", "scopes": ["messages:send"], "expires_in_days": 1.5}),
        json!({"name": "x", "scopes": ["messages:send"], "owner": "me"}),
    ];
    for body in cases {
        let r = app.post("/api-keys", body.clone(), Some(&at)).await;
        r.assert(422, "validation_error");
        assert!(r.body["detail"][0]["loc"][0] == "body", "{body}: {}", r.body);
    }
    let r = app.post("/api-keys", json!({"name": "x", "scopes": ["messages:send", "nope"]}), Some(&at)).await;
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "scopes", 1]));
    let ok = app
        .post("/api-keys", json!({"name": "x", "scopes": ["messages:send"], "expires_in_days": 3650}), Some(&at))
        .await;
    assert_eq!(ok.status, 201);
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys").await, 1);
}

#[tokio::test]
async fn malformed_and_wrong_keys_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let good = raw(&app.create_key(&token(&owner, "access_token"), &["account:read"]).await);
    let wrong_secret = format!("{}{}", &good[..10], "A".repeat(good.len() - 10));
    for bad in [
        "",
        "mf_",
        "mf_short",
        &"x".repeat(5000),
        &format!("{good}extra"),
        &good[..good.len() - 1],
        wrong_secret.as_str(),
    ] {
        let r = app.with_key(Method::GET, "/auth/me", bad, None).await;
        r.assert(401, "invalid_api_key");
    }
    let non_ascii = app.send(app.client.get(app.url("/auth/me")).header("x-api-key", "mf_ünïcödé".as_bytes())).await;
    non_ascii.assert(401, "invalid_api_key");
}

#[tokio::test]
async fn a_demoted_creator_shrinks_their_keys() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let key = raw(&app.create_key(&token(&admin, "access_token"), &["account:read", "settings:manage"]).await);
    let scopes = app.with_key(Method::GET, "/auth/me", &key, None).await.body["auth"]["scopes"].clone();
    assert!(scopes.as_array().unwrap().contains(&json!("settings:manage")), "{scopes}");
    let admin_id = admin["user"]["id"].as_str().unwrap();
    app.exec("UPDATE users SET role = 'member' WHERE id = $1", &[admin_id]).await;
    // Cached states are trusted for a second (another node's change reaches this one then).
    app.advance(Duration::from_secs(1));
    let scopes = app.with_key(Method::GET, "/auth/me", &key, None).await.body["auth"]["scopes"].clone();
    assert!(!scopes.as_array().unwrap().contains(&json!("settings:manage")), "{scopes}");
    assert!(scopes.as_array().unwrap().contains(&json!("settings:read")), "{scopes}");
    // A removed creator's keys stop working.
    app.exec("DELETE FROM users WHERE id = $1", &[admin_id]).await;
    app.advance(Duration::from_secs(1));
    app.with_key(Method::GET, "/auth/me", &key, None).await.assert(401, "invalid_api_key");
}

#[tokio::test]
async fn last_used_at_is_recorded_at_most_once_a_minute() {
    let (app, _, at) = app_with_owner().await;
    let key = app.create_key(&at, &["account:read"]).await;
    let raw_key = raw(&key);
    let path = format!("/api-keys/{}", key["id"].as_str().unwrap());
    assert_eq!(app.get(&path, Some(&at)).await.body["last_used_at"], Value::Null, "never used");
    app.with_key(Method::GET, "/auth/me", &raw_key, None).await;
    app.flush_last_used().await;
    let first = app.get(&path, Some(&at)).await.body["last_used_at"].clone();
    assert!(first.is_string(), "last_used_at written: {first}");
    // Uses within the minute write nothing.
    app.advance(Duration::from_secs(30));
    for _ in 0..3 {
        app.with_key(Method::GET, "/auth/me", &raw_key, None).await;
    }
    app.flush_last_used().await;
    assert_eq!(app.get(&path, Some(&at)).await.body["last_used_at"], first);
    // A use a minute after the last written one is written.
    app.advance(Duration::from_secs(30));
    app.with_key(Method::GET, "/auth/me", &raw_key, None).await;
    app.flush_last_used().await;
    let later = app.get(&path, Some(&at)).await.body["last_used_at"].clone();
    assert!(later.as_str() > first.as_str(), "{later} after {first}");
}

#[tokio::test]
async fn the_scope_catalogue_lists_every_scope_and_presets() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let r = app.get("/api-keys/scopes", Some(&token(&owner, "access_token"))).await;
    assert_eq!(r.status, 200);
    let names: Vec<&str> = r.body["scopes"].as_array().unwrap().iter().map(|s| s["scope"].as_str().unwrap()).collect();
    for needed in [
        "messages:send",
        "account:manage",
        "settings:manage",
        "usage:write",
        "billing:manage",
        "audit:read",
        "a2a:manage",
    ] {
        assert!(names.contains(&needed), "{needed}");
    }
    assert!(r.body["scopes"].as_array().unwrap().iter().all(|s| !s["description"].as_str().unwrap().is_empty()));
    let presets: Vec<&str> =
        r.body["presets"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(presets, ["read-only", "messaging", "outreach", "admin"]);
}

#[tokio::test]
async fn requests_are_limited_per_principal_by_plan() {
    let (app, owner, at) = app_with_owner().await;
    let key = raw(&app.create_key(&at, &["account:read"]).await);
    let first = app.with_key(Method::GET, "/auth/me", &key, None).await;
    assert_eq!(first.header("ratelimit-limit"), Some("60"));
    assert_eq!(first.header("ratelimit-remaining"), Some("59"));
    assert!(first.header("ratelimit-reset").is_some());
    for _ in 0..59 {
        assert_eq!(app.with_key(Method::GET, "/auth/me", &key, None).await.status, 200);
    }
    let limited = app.with_key(Method::GET, "/auth/me", &key, None).await;
    limited.assert(429, "rate_limited");
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    // Another principal of the same tenant has its own allowance.
    assert_eq!(app.get("/auth/me", Some(&at)).await.status, 200);
    // A plan with a higher rate takes effect (within a second).
    let tenant = owner["user"]["tenant_id"].as_str().unwrap();
    app.exec("UPDATE tenants SET plan_id = 'business' WHERE id = $1", &[tenant]).await;
    app.advance(Duration::from_secs(1));
    let upgraded = app.with_key(Method::GET, "/auth/me", &key, None).await;
    assert_eq!(upgraded.status, 200);
    assert_eq!(upgraded.header("ratelimit-limit"), Some("3000"));
}
