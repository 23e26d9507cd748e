//! The JSON bodies of the main responses, as reviewed snapshots (`tests/api/snapshots/`): a change
//! to a field, its type or its presence fails here and shows the difference. Ids, times, tokens
//! and secrets are redacted (see `snapshot`).

use reqwest::Method;
use serde_json::json;

use crate::common::{PASSWORD, TestApp, token};
use crate::security_keys::verified;
use crate::snapshot::assert_response;

#[tokio::test]
async fn sign_up_sign_in_and_who_am_i() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "ana@example.com", "password": PASSWORD, "full_name": "Ana Lima", "tenant_name": "Lima Agency"});
    let register = app.post("/auth/register", body, None).await;
    assert_response("auth_register", &register);
    let login = app.login("ana@example.com", PASSWORD).await;
    assert_response("auth_login", &login);
    let at = token(&login.body, "access_token");
    assert_response("auth_me_by_token", &app.get("/auth/me", Some(&at)).await);
    let key = token(&app.create_key(&at, &["account:read"]).await, "raw_key");
    assert_response("auth_me_by_api_key", &app.with_key(Method::GET, "/auth/me", &key, None).await);
}

#[tokio::test]
async fn api_keys_created_listed_and_rotated() {
    let app = TestApp::spawn().await;
    let at = token(&app.register("ana@example.com").await, "access_token");
    let created = app
        .post(
            "/api-keys",
            json!({"name": "CRM sync", "scopes": ["usage:read", "usage:write"], "expires_in_days": 90}),
            Some(&at),
        )
        .await;
    assert_response("api_keys_create", &created);
    assert_response("api_keys_list", &app.get("/api-keys", Some(&at)).await);
    let path = format!("/api-keys/{}/rotate", created.body["id"].as_str().expect("key id"));
    assert_response("api_keys_rotate", &app.post(&path, json!({"grace_period_minutes": 60}), Some(&at)).await);
}

#[tokio::test]
async fn usage_reports() {
    let app = TestApp::spawn().await;
    let at = token(&app.register("ana@example.com").await, "access_token");
    let events = json!({"events": [
        {"id": "e-1", "metric": "messages", "quantity": 3, "session_id": "wa-1"},
        {"id": "e-2", "metric": "ai_replies", "quantity": 1},
    ]});
    assert_response("usage_events", &app.post("/usage/events", events, Some(&at)).await);
    let consume = json!({"metric": "messages", "quantity": 2, "idempotency_key": "k-1"});
    assert_response("usage_consume", &app.post("/usage/consume", consume, Some(&at)).await);
    assert_response("usage_current", &app.get("/usage/current", Some(&at)).await);
    assert_response("usage_history", &app.get("/usage/history?months=3", Some(&at)).await);
    let daily = app.get("/usage/daily", Some(&at)).await;
    // Every day of the month up to today (API.md §7), so as many entries as today's day of the
    // month: the snapshot holds today's entry and the shape around it.
    let days = daily.body["days"].as_array().map_or(0, Vec::len);
    let last = daily.body["days"].as_array().and_then(|d| d.last()).and_then(|d| d["date"].as_str()).unwrap_or("");
    let day_of_month: usize = last.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(0);
    assert_eq!(days, day_of_month, "{}", daily.body);
    let mut today = daily;
    let used: Vec<_> =
        today.body["days"].as_array().expect("days").iter().filter(|d| d["messages"] != 0).cloned().collect();
    today.body["days"] = json!(used);
    assert_response("usage_daily_used_days", &today);
}

#[tokio::test]
async fn plans_and_the_subscription() {
    let app = TestApp::spawn().await;
    let at = token(&app.register("ana@example.com").await, "access_token");
    assert_response("billing_plans", &app.get("/billing/plans", None).await);
    assert_response("billing_subscription_free", &app.get("/billing/subscription", Some(&at)).await);
}

#[tokio::test]
async fn tenant_settings_consents_members_invitations_and_audit() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    verified(&app, "owner@example.com").await;
    let at = token(&owner, "access_token");
    app.add_member(&owner, "member@example.com", "member").await;
    assert_response("tenant_settings", &app.get("/tenant/settings", Some(&at)).await);
    let patch = json!({"ai_consent_enabled": true, "require_approval": true, "allowed_numbers": ["+5511999990000"]});
    assert_response("tenant_settings_update", &app.put_json(Method::PATCH, "/tenant/settings", patch, Some(&at)).await);
    assert_response("tenant_consents", &app.get("/tenant/consents", Some(&at)).await);
    assert_response("tenant_members", &app.get("/tenant/members", Some(&at)).await);
    let invite = json!({"email": "bruno@example.com", "role": "admin"});
    assert_response("tenant_invitation_create", &app.post("/tenant/invitations", invite, Some(&at)).await);
    assert_response("tenant_invitations", &app.get("/tenant/invitations", Some(&at)).await);
    assert_response("audit_logs", &app.get("/audit-logs?limit=3", Some(&at)).await);
}

#[tokio::test]
async fn the_main_error_shapes() {
    let app = TestApp::spawn().await;
    let bad = json!({"email": "not-an-email", "password": PASSWORD, "full_name": "Ana"});
    assert_response("error_422_validation", &app.post("/auth/register", bad, None).await);
    assert_response("error_401_not_authenticated", &app.get("/auth/me", None).await);
    assert_response("error_401_invalid_credentials", &app.login("nobody@example.com", PASSWORD).await);
    let at = token(&app.register("ana@example.com").await, "access_token");
    let reader = token(&app.create_key(&at, &["account:read"]).await, "raw_key");
    let scoped =
        app.with_key(Method::PATCH, "/tenant/settings", &reader, Some(json!({"require_approval": true}))).await;
    assert_response("error_403_insufficient_scope", &scoped);
    assert_response("error_404_not_found", &app.get("/api-keys/00000000-0000-0000-0000-000000000000", Some(&at)).await);
    let again = json!({"email": "ana@example.com", "password": PASSWORD, "full_name": "Ana"});
    assert_response("error_409_conflict", &app.post("/auth/register", again, None).await);
    for _ in 0..10 {
        app.post("/auth/magic-link/request", json!({"email": "x@example.com"}), None).await;
    }
    let limited = app.post("/auth/magic-link/request", json!({"email": "x@example.com"}), None).await;
    assert_response("error_429_rate_limited", &limited);
}
