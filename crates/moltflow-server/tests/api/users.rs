//! `/users/me` and `/auth/set-password`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{PASSWORD, TestApp, token};
use crate::mail_outbox::app_with_smtp;

const NEW_PASSWORD: &str = "quiet-meadow-lantern-77";

#[tokio::test]
async fn profile_reads_and_updates() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let access = token(&pair, "access_token");
    let me = app.get("/users/me", Some(&access)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    for field in [
        "id",
        "email",
        "full_name",
        "role",
        "tenant_id",
        "email_verified",
        "has_password",
        "timezone",
        "locale",
        "created_at",
        "updated_at",
    ] {
        assert!(!me.body[field].is_null(), "{field} in {}", me.body);
    }
    assert_eq!((me.body["timezone"].as_str(), me.body["locale"].as_str()), (Some("UTC"), Some("en")));

    let r = app
        .put_json(
            Method::PATCH,
            "/users/me",
            json!({"full_name": "  Ana Lima ", "timezone": "America/Sao_Paulo", "locale": "pt-br"}),
            Some(&access),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["full_name"], "Ana Lima");
    assert_eq!(r.body["timezone"], "America/Sao_Paulo");
    assert_eq!(r.body["locale"], "pt-BR");
    // Only what was sent changes.
    let r = app.put_json(Method::PATCH, "/users/me", json!({"locale": "es-419"}), Some(&access)).await;
    assert_eq!((r.body["timezone"].as_str(), r.body["locale"].as_str()), (Some("America/Sao_Paulo"), Some("es-419")));
    let again = app.get("/users/me", Some(&access)).await.body;
    assert_eq!(again, r.body);
    assert_eq!(app.get("/auth/me", Some(&access)).await.body["full_name"], "Ana Lima");
}

#[tokio::test]
async fn bad_profile_updates_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let access = token(&pair, "access_token");
    let before = app.get("/users/me", Some(&access)).await.body;
    let long = "n".repeat(101);
    let cases: [(Value, &str, &str); 9] = [
        (json!({"timezone": "Mars/Olympus_Mons"}), "timezone", "value_error"),
        (json!({"timezone": ""}), "timezone", "value_error"),
        (json!({"full_name": ""}), "full_name", "string_too_short"),
        (json!({"full_name": "   "}), "full_name", "string_too_short"),
        (json!({"full_name": long}), "full_name", "string_too_long"),
        (json!({"full_name": "Ana\u{0007}"}), "full_name", "value_error"),
        (json!({"locale": "english_US"}), "locale", "value_error"),
        (json!({"locale": "en-"}), "locale", "value_error"),
        (json!({"nickname": "x"}), "nickname", "extra_forbidden"),
    ];
    for (body, field, kind) in cases {
        let r = app.put_json(Method::PATCH, "/users/me", body.clone(), Some(&access)).await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], json!(["body", field]), "{body}");
        assert_eq!(r.body["detail"][0]["type"], kind, "{body}");
    }
    // One good field with one bad one: nothing is written.
    let r = app
        .put_json(Method::PATCH, "/users/me", json!({"full_name": "Ana B", "timezone": "Nowhere"}), Some(&access))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(app.get("/users/me", Some(&access)).await.body, before);
    app.get("/users/me", None).await.assert(401, "not_authenticated");
}

#[tokio::test]
async fn a_passwordless_user_sets_a_first_password() {
    let app = TestApp::spawn().await;
    let r = app.post("/auth/register", json!({"email": "nopw@example.com", "full_name": "No Password"}), None).await;
    let access = token(&r.body, "access_token");
    let r = app.post("/auth/set-password", json!({"password": NEW_PASSWORD}), Some(&access)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get("/users/me", Some(&access)).await.body["has_password"], true);
    assert_eq!(app.login("nopw@example.com", NEW_PASSWORD).await.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'password.set'").await, 1);
    // From now on a change needs the current password.
    let r = app.post("/auth/set-password", json!({"password": "another-fine-phrase-99"}), Some(&access)).await;
    r.assert(422, "validation_error");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "current_password"]));
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let this = app.register("ana@example.com").await;
    let other = app.login("ana@example.com", PASSWORD).await.body;
    let access = token(&this, "access_token");
    let r = app.post("/auth/set-password", json!({"password": NEW_PASSWORD}), Some(&access)).await;
    r.assert(422, "validation_error");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "current_password"]));
    app.post(
        "/auth/set-password",
        json!({"password": NEW_PASSWORD, "current_password": "wrong-password-1"}),
        Some(&access),
    )
    .await
    .assert(400, "invalid_current_password");
    for weak in ["short", "password", "ana@example.com"] {
        let r = app
            .post("/auth/set-password", json!({"password": weak, "current_password": PASSWORD}), Some(&access))
            .await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], json!(["body", "password"]), "{weak}");
    }
    assert_eq!(app.login("ana@example.com", PASSWORD).await.status, 200, "nothing changed so far");
    assert_eq!(app.get("/auth/me", Some(&token(&other, "access_token"))).await.status, 200);

    let r = app
        .post("/auth/set-password", json!({"password": NEW_PASSWORD, "current_password": PASSWORD}), Some(&access))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.get("/auth/me", Some(&token(&other, "access_token"))).await.assert(401, "invalid_token");
    assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200, "this session stays");
    app.login("ana@example.com", PASSWORD).await.assert(401, "invalid_credentials");
    assert_eq!(app.login("ana@example.com", NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_reset_link_mailed_before_a_password_change_stops_working() {
    let (app, sink) = app_with_smtp().await;
    let pair = app.register("ana@example.com").await;
    sink.wait_for(1).await;
    app.post("/auth/forgot-password", json!({"email": "ana@example.com"}), None).await;
    let t = sink.wait_for(2).await[1].token();
    let r = app
        .post(
            "/auth/set-password",
            json!({"password": NEW_PASSWORD, "current_password": PASSWORD}),
            Some(&token(&pair, "access_token")),
        )
        .await;
    assert_eq!(r.status, 200);
    app.post("/auth/reset-password", json!({"token": t, "new_password": "another-fine-phrase-99"}), None)
        .await
        .assert(400, "invalid_token");
}

async fn delete_me(app: &TestApp, access: &str, body: Value) -> crate::common::Resp {
    app.put_json(Method::DELETE, "/users/me", body, Some(access)).await
}

#[tokio::test]
async fn a_sole_owner_deleting_the_account_erases_the_tenant() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let access = token(&pair, "access_token");
    let r = delete_me(&app, &access, json!({})).await;
    r.assert(422, "validation_error");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "current_password"]));
    delete_me(&app, &access, json!({"current_password": "wrong-password-1"}))
        .await
        .assert(400, "invalid_current_password");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);

    let r = delete_me(&app, &access, json!({"current_password": PASSWORD})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    for rows in [
        "SELECT COUNT(*) FROM users",
        "SELECT COUNT(*) FROM tenants",
        "SELECT COUNT(*) FROM sessions",
        "SELECT COUNT(*) FROM refresh_tokens",
        "SELECT COUNT(*) FROM one_time_tokens",
        "SELECT COUNT(*) FROM audit_logs",
        "SELECT COUNT(*) FROM mail_outbox",
    ] {
        assert_eq!(app.count(rows).await, 0, "{rows}");
    }
    app.get("/users/me", Some(&access)).await.assert(401, "invalid_token");
    app.login("ana@example.com", PASSWORD).await.assert(401, "invalid_credentials");
}

#[tokio::test]
async fn the_last_owner_of_a_tenant_with_members_cannot_leave() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let member = app.register("member@example.com").await;
    // Here the second account is moved in directly (invitations have tests of their own).
    let member_id = member["user"]["id"].as_str().unwrap();
    app.move_user(&member, owner["user"]["tenant_id"].as_str().unwrap(), "member").await;
    let owner_access = token(&owner, "access_token");

    delete_me(&app, &owner_access, json!({"current_password": PASSWORD})).await.assert(409, "last_owner");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 2);

    let member = app.login("member@example.com", PASSWORD).await.body;
    let r = delete_me(&app, &token(&member, "access_token"), json!({"current_password": PASSWORD})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM tenants").await, 1, "the tenant survives");
    assert_eq!(
        app.count_with(
            "SELECT COUNT(*) FROM audit_logs WHERE action = 'account.deleted' AND target = $1",
            &[member_id]
        )
        .await,
        1
    );
    app.login("member@example.com", PASSWORD).await.assert(401, "invalid_credentials");

    // Alone now, the owner may go, and the tenant with them.
    assert_eq!(delete_me(&app, &owner_access, json!({"current_password": PASSWORD})).await.status, 204);
    assert_eq!(app.count("SELECT COUNT(*) FROM tenants").await, 0);
}

#[tokio::test]
async fn a_passwordless_account_is_deleted_from_a_fresh_magic_link_session_only() {
    let (app, sink) = app_with_smtp().await;
    let r = app.post("/auth/register", json!({"email": "nopw@example.com", "full_name": "No Password"}), None).await;
    let register_access = token(&r.body, "access_token");
    sink.wait_for(1).await;
    delete_me(&app, &register_access, json!({})).await.assert(403, "reauthentication_required");

    // A magic-link session older than 10 minutes is not fresh.
    app.post("/auth/magic-link/request", json!({"email": "nopw@example.com"}), None).await;
    let t = sink.wait_for(2).await[1].token();
    let stale = app.post("/auth/magic-link/verify", json!({"token": t}), None).await.body;
    // The first proof of the mailbox: its notice (the registration's session is taken back).
    assert!(sink.wait_for(3).await[2].header("Subject").is_some_and(|s| s.contains("confirmed")));
    app.store
        .execute_raw("UPDATE sessions SET created_at = created_at - 600001 WHERE method = 'magic_link'")
        .await
        .unwrap();
    delete_me(&app, &token(&stale, "access_token"), json!({})).await.assert(403, "reauthentication_required");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);

    app.post("/auth/magic-link/request", json!({"email": "nopw@example.com"}), None).await;
    let t = sink.wait_for(4).await[3].token();
    let fresh = app.post("/auth/magic-link/verify", json!({"token": t}), None).await.body;
    let r = delete_me(&app, &token(&fresh, "access_token"), json!({})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}
