//! The account use cases read the service's clock (`AppState::clock`), so moving it ages refresh
//! tokens, invitations and the stamps of what they write, without touching the database.

use std::time::Duration;

use moltflow_core::clock::{DAY_MS, SECOND_MS};
use serde_json::json;

use crate::common::{TestApp, token};
use crate::security_keys::verified;

fn after(ms: i64) -> Duration {
    Duration::from_millis(ms as u64)
}

#[tokio::test]
async fn a_refresh_token_lasts_thirty_days_on_the_clock() {
    let app = TestApp::spawn().await;
    let pair = app.register("clock-refresh@example.com").await;
    app.state.clock.advance(after(29 * DAY_MS));
    let renewed = app.post("/auth/refresh", json!({"refresh_token": token(&pair, "refresh_token")}), None).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    // The renewed token was issued on the moved clock: it outlives the first by 29 days.
    app.state.clock.advance(after(2 * DAY_MS));
    let late = app.post("/auth/refresh", json!({"refresh_token": token(&renewed.body, "refresh_token")}), None).await;
    assert_eq!(late.status, 200, "{}", late.body);
    app.state.clock.advance(after(30 * DAY_MS + SECOND_MS));
    app.post("/auth/refresh", json!({"refresh_token": token(&late.body, "refresh_token")}), None)
        .await
        .assert(401, "invalid_token");
}

#[tokio::test]
async fn an_invitation_expires_after_seven_days_on_the_clock_and_the_log_says_when() {
    let app = TestApp::spawn().await;
    let owner = app.register("clock-owner@example.com").await;
    verified(&app, "clock-owner@example.com").await;
    let at = token(&owner, "access_token");
    // A week outlives any access token on the moved clock: the owner's key speaks for it.
    let key = app.create_key(&at, &["*"]).await["raw_key"].as_str().unwrap().to_owned();
    let call = |method: reqwest::Method, path: &'static str, body: Option<serde_json::Value>| {
        let key = key.clone();
        let app = &app;
        async move { app.with_key(method, path, &key, body).await }
    };
    let invite = || Some(json!({"email": "guest@example.com"}));
    assert_eq!(call(reqwest::Method::POST, "/tenant/invitations", invite()).await.status, 201);
    app.state.clock.advance(after(7 * DAY_MS - SECOND_MS));
    assert_eq!(call(reqwest::Method::GET, "/tenant/invitations", None).await.body[0]["status"], "pending");
    app.state.clock.advance(after(2 * SECOND_MS));
    assert_eq!(call(reqwest::Method::GET, "/tenant/invitations", None).await.body[0]["status"], "expired");

    // What a use case writes is stamped on the same clock.
    let moved = call(reqwest::Method::POST, "/tenant/invitations", invite()).await;
    assert_eq!(moved.status, 201, "{}", moved.body);
    let day = |stamp: &serde_json::Value| stamp.as_str().unwrap()[..10].to_owned();
    let log = call(reqwest::Method::GET, "/audit-logs?action=member.invited", None).await.body;
    let stamps: Vec<String> = log["items"].as_array().unwrap().iter().map(|e| day(&e["at"])).collect();
    assert_eq!(stamps.len(), 2, "{log}");
    assert_ne!(stamps[0], stamps[1], "the second invitation is a week later: {log}");
    assert_eq!(stamps[0], day(&moved.body["created_at"]));
}
