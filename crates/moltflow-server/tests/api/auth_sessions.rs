use serde_json::json;

use crate::common::{PASSWORD, TestApp, token};

#[tokio::test]
async fn refresh_rotates_the_pair() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let r = app.post("/auth/refresh", json!({"refresh_token": token(&pair, "refresh_token")}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.body["refresh_token"], pair["refresh_token"]);
    assert_eq!(r.body["user"], pair["user"]);
    assert_eq!(app.get("/auth/me", Some(&token(&r.body, "access_token"))).await.status, 200);
    // The new refresh token works in turn.
    let again = app.post("/auth/refresh", json!({"refresh_token": token(&r.body, "refresh_token")}), None).await;
    assert_eq!(again.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens WHERE token_hash LIKE '%-%'").await, 0);
}

#[tokio::test]
async fn refresh_token_reused_within_grace_yields_a_fresh_pair() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let rt = token(&pair, "refresh_token");
    let first = app.post("/auth/refresh", json!({"refresh_token": rt}), None).await;
    let second = app.post("/auth/refresh", json!({"refresh_token": rt}), None).await;
    assert_eq!((first.status, second.status), (200, 200), "{}", second.body);
    assert_ne!(first.body["refresh_token"], second.body["refresh_token"]);
    assert_eq!(app.get("/auth/me", Some(&token(&second.body, "access_token"))).await.status, 200);
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_all_succeed() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let body = json!({"refresh_token": token(&pair, "refresh_token")});
    let results = futures::future::join_all((0..4).map(|_| app.post("/auth/refresh", body.clone(), None))).await;
    for r in &results {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await, 1);
}

#[tokio::test]
async fn refresh_token_reused_after_grace_revokes_session() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let rt = token(&pair, "refresh_token");
    let next = app.post("/auth/refresh", json!({"refresh_token": rt}), None).await;
    assert_eq!(next.status, 200);
    // Move the rotation 11 seconds into the past.
    app.store
        .execute_raw("UPDATE refresh_tokens SET rotated_at = rotated_at - 11000 WHERE rotated_at IS NOT NULL")
        .await
        .unwrap();
    app.post("/auth/refresh", json!({"refresh_token": rt}), None).await.assert(401, "refresh_token_reused");
    // Every token descended from that login is dead: the newer refresh and both access tokens.
    app.post("/auth/refresh", json!({"refresh_token": token(&next.body, "refresh_token")}), None)
        .await
        .assert(401, "invalid_token");
    app.get("/auth/me", Some(&token(&next.body, "access_token"))).await.assert(401, "invalid_token");
    app.get("/auth/me", Some(&token(&pair, "access_token"))).await.assert(401, "invalid_token");
}

#[tokio::test]
async fn refresh_refuses_garbage_expired_and_bad_bodies() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    app.post("/auth/refresh", json!({"refresh_token": "nope"}), None).await.assert(401, "invalid_token");
    app.post("/auth/refresh", json!({"refresh_token": ""}), None).await.assert(401, "invalid_token");
    app.post("/auth/refresh", json!({"refresh_token": "x".repeat(5000)}), None).await.assert(401, "invalid_token");
    // An access token is not a refresh token.
    app.post("/auth/refresh", json!({"refresh_token": token(&pair, "access_token")}), None)
        .await
        .assert(401, "invalid_token");
    app.post("/auth/refresh", json!({"refresh_token": 1}), None).await.assert(422, "validation_error");
    app.post("/auth/refresh", json!({}), None).await.assert(422, "validation_error");
    app.store.execute_raw("UPDATE refresh_tokens SET expires_at = 0").await.unwrap();
    app.post("/auth/refresh", json!({"refresh_token": token(&pair, "refresh_token")}), None)
        .await
        .assert(401, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 1);
}

#[tokio::test]
async fn logout_kills_access_and_refresh_tokens_at_once() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let at = token(&pair, "access_token");
    assert_eq!(app.get("/auth/me", Some(&at)).await.status, 200);
    let r = app.send(app.client.post(app.url("/auth/logout")).bearer_auth(&at)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    app.get("/auth/me", Some(&at)).await.assert(401, "invalid_token");
    app.post("/auth/refresh", json!({"refresh_token": token(&pair, "refresh_token")}), None)
        .await
        .assert(401, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'logout'").await, 1);
}

#[tokio::test]
async fn logout_all_sessions_ends_every_session_of_the_user() {
    let app = TestApp::spawn().await;
    let first = app.register("ana@example.com").await;
    let second = app.login("ana@example.com", PASSWORD).await.body;
    let other_user = app.register("bob@example.com").await;
    let r = app.post("/auth/logout", json!({"all_sessions": true}), Some(&token(&second, "access_token"))).await;
    assert_eq!(r.status, 204);
    app.get("/auth/me", Some(&token(&first, "access_token"))).await.assert(401, "invalid_token");
    app.get("/auth/me", Some(&token(&second, "access_token"))).await.assert(401, "invalid_token");
    assert_eq!(app.get("/auth/me", Some(&token(&other_user, "access_token"))).await.status, 200);
}

#[tokio::test]
async fn logout_of_one_session_keeps_the_others() {
    let app = TestApp::spawn().await;
    let first = app.register("ana@example.com").await;
    let second = app.login("ana@example.com", PASSWORD).await.body;
    let r = app.post("/auth/logout", json!({"all_sessions": false}), Some(&token(&second, "access_token"))).await;
    assert_eq!(r.status, 204);
    assert_eq!(app.get("/auth/me", Some(&token(&first, "access_token"))).await.status, 200);
    app.get("/auth/me", Some(&token(&second, "access_token"))).await.assert(401, "invalid_token");
}

#[tokio::test]
async fn logout_bad_input_changes_nothing() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let at = token(&pair, "access_token");
    app.post("/auth/logout", json!({"all_sessions": "yes"}), Some(&at)).await.assert(422, "validation_error");
    app.post("/auth/logout", json!({"everything": true}), Some(&at)).await.assert(422, "validation_error");
    app.post("/auth/logout", json!({}), None).await.assert(401, "not_authenticated");
    assert_eq!(app.get("/auth/me", Some(&at)).await.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL").await, 0);
}
