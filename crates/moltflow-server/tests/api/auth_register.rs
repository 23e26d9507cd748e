use serde_json::json;

use crate::common::{PASSWORD, TestApp, token};

#[tokio::test]
async fn register_creates_owner_of_a_free_tenant_and_signs_in() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/auth/register",
            json!({"email": "  Ana@Example.COM ", "password": PASSWORD, "full_name": "Ana Lima", "tenant_name": "Lima Agency"}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 1800);
    let user = &r.body["user"];
    assert_eq!(user["email"], "ana@example.com");
    assert_eq!(user["role"], "owner");
    assert_eq!(user["full_name"], "Ana Lima");
    let tenant_id = user["tenant_id"].as_str().unwrap();
    let plan = app
        .count_with(
            "SELECT COUNT(*) FROM tenants WHERE id = $1 AND plan_id = 'free' AND name = 'Lima Agency'",
            &[tenant_id],
        )
        .await;
    assert_eq!(plan, 1);
    let stored = app.count("SELECT COUNT(*) FROM users WHERE password_hash LIKE '$argon2id$%'").await;
    assert_eq!(stored, 1, "password stored as Argon2id only");

    let me = app.get("/auth/me", Some(&token(&r.body, "access_token"))).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], "ana@example.com");
    assert_eq!(me.body["has_password"], true);
    assert_eq!(me.body["email_verified"], false);
}

#[tokio::test]
async fn register_without_password_makes_a_passwordless_account() {
    let app = TestApp::spawn().await;
    let r = app.post("/auth/register", json!({"email": "nopw@example.com", "full_name": "No Password"}), None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let me = app.get("/auth/me", Some(&token(&r.body, "access_token"))).await;
    assert_eq!(me.body["has_password"], false);
    app.login("nopw@example.com", "").await.assert(401, "invalid_credentials");
}

#[tokio::test]
async fn duplicate_email_in_any_case_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.register("dup@example.com").await;
    let r = app
        .post("/auth/register", json!({"email": " DUP@example.com", "password": PASSWORD, "full_name": "X"}), None)
        .await;
    r.assert(409, "email_taken");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM tenants").await, 1);
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_one_account() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "race@example.com", "password": PASSWORD, "full_name": "Racer"});
    let results = futures::future::join_all((0..8).map(|_| app.post("/auth/register", body.clone(), None))).await;
    let created = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1);
    assert!(results.iter().all(|r| r.status == 201 || r.code() == "email_taken"));
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM tenants").await, 1);
}

#[tokio::test]
async fn bad_registrations_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let long_name = "n".repeat(101);
    let long_password = "p".repeat(129);
    let cases = [
        (json!({"password": PASSWORD, "full_name": "A"}), ["body", "email"], "missing"),
        (json!({"email": "a@example.com", "password": PASSWORD}), ["body", "full_name"], "missing"),
        (json!({"email": 7, "password": PASSWORD, "full_name": "A"}), ["body", "email"], "string_type"),
        (json!({"email": "not-an-email", "password": PASSWORD, "full_name": "A"}), ["body", "email"], "value_error"),
        (
            json!({"email": "a@example.com\r\nBcc: x@y.z", "password": PASSWORD, "full_name": "A"}),
            ["body", "email"],
            "value_error",
        ),
        (json!({"email": "a b@example.com", "password": PASSWORD, "full_name": "A"}), ["body", "email"], "value_error"),
        (json!({"email": "a@example.com", "password": "short", "full_name": "A"}), ["body", "password"], "value_error"),
        (
            json!({"email": "a@example.com", "password": long_password, "full_name": "A"}),
            ["body", "password"],
            "value_error",
        ),
        (
            json!({"email": "a@example.com", "password": "password", "full_name": "A"}),
            ["body", "password"],
            "value_error",
        ),
        (
            json!({"email": "a@example.com", "password": "A@Example.com", "full_name": "A"}),
            ["body", "password"],
            "value_error",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "full_name": "   "}),
            ["body", "full_name"],
            "string_too_short",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "full_name": long_name}),
            ["body", "full_name"],
            "string_too_long",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "full_name": "Ana\nBcc"}),
            ["body", "full_name"],
            "value_error",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "full_name": "A", "role": "admin"}),
            ["body", "role"],
            "extra_forbidden",
        ),
        (json!({"email": "a@example.com", "password": true, "full_name": "A"}), ["body", "password"], "string_type"),
    ];
    for (body, loc, kind) in cases {
        let r = app.post("/auth/register", body.clone(), None).await;
        r.assert(422, "validation_error");
        let item = &r.body["detail"][0];
        assert_eq!(item["loc"], json!(loc), "{body} → {}", r.body);
        assert_eq!(item["type"], kind, "{body} → {}", r.body);
        assert!(item["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM tenants").await, 0);
}

#[tokio::test]
async fn weak_password_hint_says_why() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/auth/register", json!({"email": "a@example.com", "password": "qwertyui", "full_name": "A"}), None)
        .await;
    r.assert(422, "validation_error");
    assert!(r.body["detail"][0]["msg"].as_str().unwrap().contains("too weak"), "{}", r.body);
}

#[tokio::test]
async fn unicode_names_are_kept_as_given() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/auth/register",
            json!({"email": "zoe@exämple.com", "password": PASSWORD, "full_name": "  Zoë 李 🚀  "}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["user"]["full_name"], "Zoë 李 🚀");
    assert_eq!(r.body["user"]["email"], "zoe@exämple.com");
}
