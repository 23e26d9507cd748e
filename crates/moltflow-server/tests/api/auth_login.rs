use serde_json::json;

use crate::common::{PASSWORD, TestApp, token};

#[tokio::test]
async fn login_answers_the_seed_shape() {
    let app = TestApp::spawn().await;
    let reg = app.register("ana@example.com").await;
    let r = app.login("  ANA@example.com ", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for field in ["access_token", "refresh_token"] {
        assert!(r.body[field].as_str().is_some_and(|t| t.len() > 40), "{field}");
    }
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 1800);
    assert_eq!(r.body["user"], reg["user"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'login.succeeded'").await, 1);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com").await;
    let wrong = app.login("ana@example.com", "wrong-password-123").await;
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    wrong.assert(401, "invalid_credentials");
    unknown.assert(401, "invalid_credentials");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    app.flush_audit().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'login.failed'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1, "only the registration session");
}

#[tokio::test]
async fn five_failures_lock_the_account_for_fifteen_minutes() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com").await;
    for _ in 0..5 {
        app.login("ana@example.com", "wrong-password-123").await.assert(401, "invalid_credentials");
    }
    let locked = app.login("Ana@example.com", PASSWORD).await;
    locked.assert(429, "login_locked");
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "retry-after {retry}");
    // Another account is not affected.
    app.register("bob@example.com").await;
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com").await;
    for _ in 0..4 {
        app.login("ana@example.com", "wrong-password-123").await;
    }
    assert_eq!(app.login("ana@example.com", PASSWORD).await.status, 200);
    for _ in 0..4 {
        app.login("ana@example.com", "wrong-password-123").await.assert(401, "invalid_credentials");
    }
    assert_eq!(app.login("ana@example.com", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn more_than_thirty_attempts_a_minute_from_one_ip_are_refused() {
    let app = TestApp::spawn().await;
    for i in 0..30 {
        app.login(&format!("user{i}@example.com"), "whatever-123").await.assert(401, "invalid_credentials");
    }
    let r = app.login("user99@example.com", "whatever-123").await;
    r.assert(429, "rate_limited");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn rate_limit_scale_zero_turns_limits_off() {
    let app = TestApp::spawn_with(&[("rate_limit_scale", "0")]).await;
    for i in 0..40 {
        app.login(&format!("user{i}@example.com"), "whatever-123").await.assert(401, "invalid_credentials");
    }
}

#[tokio::test]
async fn login_bad_input() {
    let app = TestApp::spawn().await;
    app.post("/auth/login", json!({"email": "a@example.com"}), None).await.assert(422, "validation_error");
    app.post("/auth/login", json!({"email": ["a"], "password": "x"}), None).await.assert(422, "validation_error");
    app.post("/auth/login", json!({"email": "a@example.com", "password": 12345678}), None)
        .await
        .assert(422, "validation_error");
    app.login("not an email", PASSWORD).await.assert(401, "invalid_credentials");
    app.login("", "").await.assert(401, "invalid_credentials");
    let huge = "x".repeat(60_000);
    app.login("a@example.com", &huge).await.assert(401, "invalid_credentials");
}

#[tokio::test]
async fn logged_in_token_authenticates() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com").await;
    let pair = app.login("ana@example.com", PASSWORD).await.body;
    let me = app.get("/auth/me", Some(&token(&pair, "access_token"))).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["auth"]["method"], "jwt");
    assert_eq!(me.body["auth"]["scopes"], json!(["*"]));
    assert_eq!(me.body["auth"]["api_key_id"], serde_json::Value::Null);
    assert!(me.body["auth"]["session_id"].is_string());
}
