use serde_json::json;

use crate::common::{PASSWORD, TestApp};

#[tokio::test]
async fn malformed_json_wrong_content_type_and_empty_bodies() {
    let app = TestApp::spawn().await;
    app.post_raw("/auth/login", Some("application/json"), r#"{"email": "#).await.assert(400, "malformed_json");
    app.post_raw("/auth/login", Some("application/json"), r#"{"email": "a"} trailing"#)
        .await
        .assert(400, "malformed_json");
    app.post_raw("/auth/login", Some("text/plain"), r#"{"email":"a","password":"b"}"#)
        .await
        .assert(400, "invalid_content_type");
    app.post_raw("/auth/login", None, r#"{"email":"a","password":"b"}"#).await.assert(400, "invalid_content_type");
    let empty = app.post_raw("/auth/login", Some("application/json"), "").await;
    empty.assert(422, "validation_error");
    assert_eq!(empty.body["detail"][0]["loc"], json!(["body"]));
    app.post_raw("/auth/login", Some("application/json"), "null").await.assert(422, "validation_error");
    app.post_raw("/auth/login", Some("application/json"), "[]").await.assert(422, "validation_error");
    app.post_raw("/auth/register", Some("application/json; charset=utf-8"), r#"{"email":"#)
        .await
        .assert(400, "malformed_json");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused() {
    let app = TestApp::spawn().await;
    let ten_mb =
        format!(r#"{{"email":"a@example.com","password":"{}","full_name":"A"}}"#, "x".repeat(10 * 1024 * 1024));
    app.post_raw("/auth/register", Some("application/json"), ten_mb).await.assert(400, "body_too_large");
    let just_over = format!(r#"{{"email":"a@example.com","password":"{}","full_name":"A"}}"#, "x".repeat(64 * 1024));
    app.post_raw("/auth/register", Some("application/json"), just_over).await.assert(400, "body_too_large");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let r = app.get("/no/such/route", None).await;
    r.assert(404, "not_found");
    assert!(r.body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    let r = app.send(app.client.get(format!("{}/nowhere", app.base))).await;
    r.assert(404, "not_found");
    let r = app.send(app.client.delete(app.url("/auth/login"))).await;
    r.assert(405, "method_not_allowed");
}

#[tokio::test]
async fn request_ids_are_echoed_or_minted() {
    let app = TestApp::spawn().await;
    let r = app.send(app.client.get(app.url("/healthz")).header("x-request-id", "trace-abc-123")).await;
    assert_eq!(r.header("x-request-id"), Some("trace-abc-123"));
    let minted = app.get("/healthz", None).await;
    assert!(minted.header("x-request-id").is_some_and(|s| s.len() >= 16));
    let err = app.send(app.client.get(app.url("/auth/me")).header("x-request-id", "req-42")).await;
    assert_eq!(err.body["request_id"], "req-42");
    // An unusable id (too long) is replaced rather than echoed.
    let long = "a".repeat(300);
    let r = app.send(app.client.get(app.url("/healthz")).header("x-request-id", long.as_str())).await;
    assert_ne!(r.header("x-request-id"), Some(long.as_str()));
}

#[tokio::test]
async fn routes_answer_with_and_without_the_prefix() {
    let app = TestApp::spawn().await;
    let r = app
        .send(app.client.post(format!("{}/auth/register", app.base)).json(&json!({
            "email": "root@example.com", "password": PASSWORD, "full_name": "Root"
        })))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app.send(app.client.post(format!("{}/api/v2/auth/login", app.base)).json(&json!({
        "email": "root@example.com", "password": PASSWORD
    })));
    assert_eq!(r.await.status, 200);
}

#[tokio::test]
async fn errors_never_leak_hashes_or_sql() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com").await;
    for r in [
        app.login("ana@example.com", "wrong-password-1").await,
        app.post("/auth/register", json!({"email": "ana@example.com", "password": PASSWORD, "full_name": "A"}), None)
            .await,
        app.post("/auth/refresh", json!({"refresh_token": "zzz"}), None).await,
    ] {
        let text = r.body.to_string();
        for needle in ["argon2", "SELECT", "INSERT", "sqlx", "panicked", "password_hash"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
    }
}
