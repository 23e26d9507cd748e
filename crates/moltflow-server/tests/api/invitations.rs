//! Invitations: mailed over real SMTP, accepted through the link, with the role rules.

use reqwest::Method;
use serde_json::json;

use crate::common::{PASSWORD, TestApp, token};
use crate::mail_outbox::app_with_smtp;
use crate::security_keys::verified;
use crate::smtp::{Mail, SmtpSink};

/// The newest mail to `to`, after a pass of the outbox.
async fn invitation_mail(sink: &SmtpSink, to: &str) -> Mail {
    let mails = sink.wait_for(0).await;
    mails.into_iter().rfind(|m| m.rcpt.iter().any(|r| r.contains(to))).unwrap_or_else(|| panic!("no mail to {to}"))
}

#[tokio::test]
async fn an_invited_address_joins_the_tenant_with_its_role() {
    let (app, sink) = app_with_smtp().await;
    let owner = app.register("owner@example.com").await;
    verified(&app, "owner@example.com").await;
    let at = token(&owner, "access_token");
    let r = app.post("/tenant/invitations", json!({"email": " Bruno@Example.com ", "role": "admin"}), Some(&at)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (r.body["email"].as_str(), r.body["role"].as_str(), r.body["status"].as_str()),
        (Some("bruno@example.com"), Some("admin"), Some("pending"))
    );
    let mail = invitation_mail(&sink, "bruno@example.com").await;
    assert!(mail.link().contains("/accept-invitation?token="), "{}", mail.text);
    assert!(mail.text.contains("Test User"), "inviter named: {}", mail.text);
    let list = app.get("/tenant/invitations", Some(&at)).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);

    let joined = app
        .post(
            "/auth/accept-invitation",
            json!({"token": mail.token(), "full_name": "Bruno Costa", "password": "quiet-river-lantern-7"}),
            None,
        )
        .await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    assert_eq!(joined.body["user"]["tenant_id"], owner["user"]["tenant_id"]);
    assert_eq!(joined.body["user"]["role"], "admin");
    let me = app.get("/auth/me", Some(&token(&joined.body, "access_token"))).await;
    assert_eq!(me.body["email_verified"], true);
    assert_eq!(app.login("bruno@example.com", "quiet-river-lantern-7").await.status, 200);
    let members = app.get("/tenant/members", Some(&at)).await.body;
    assert_eq!(members.as_array().unwrap().len(), 2);
    assert_eq!(app.get("/tenant/invitations", Some(&at)).await.body[0]["status"], "accepted");
    for action in ["member.invited", "member.joined"] {
        assert_eq!(app.count_with("SELECT COUNT(*) FROM audit_logs WHERE action = $1", &[action]).await, 1, "{action}");
    }
    // Used twice: refused, nothing created.
    app.post("/auth/accept-invitation", json!({"token": mail.token(), "full_name": "Again"}), None)
        .await
        .assert(400, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 2);
}

#[tokio::test]
async fn invitation_rules_and_bad_tokens() {
    let (app, sink) = app_with_smtp().await;
    let owner = app.register("owner@example.com").await;
    verified(&app, "owner@example.com").await;
    let oat = token(&owner, "access_token");
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    verified(&app, "admin@example.com").await;
    let aat = token(&admin, "access_token");
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let mat = token(&member, "access_token");
    // Admins invite members only; members invite nobody.
    app.post("/tenant/invitations", json!({"email": "x@example.com", "role": "admin"}), Some(&aat))
        .await
        .assert(403, "owner_required");
    app.post("/tenant/invitations", json!({"email": "x@example.com"}), Some(&mat))
        .await
        .assert(403, "insufficient_scope");
    assert_eq!(app.post("/tenant/invitations", json!({"email": "x@example.com"}), Some(&aat)).await.status, 201);
    // Bad input.
    app.post("/tenant/invitations", json!({"email": "not-an-email"}), Some(&oat)).await.assert(422, "validation_error");
    app.post("/tenant/invitations", json!({"email": "y@example.com", "role": "boss"}), Some(&oat))
        .await
        .assert(422, "validation_error");
    app.post("/tenant/invitations", json!({"email": "member@example.com"}), Some(&oat))
        .await
        .assert(409, "email_taken");
    app.post("/tenant/invitations", json!({"email": "y@example.com", "extra": 1}), Some(&oat))
        .await
        .assert(422, "validation_error");
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations").await, 1);

    let mail = invitation_mail(&sink, "x@example.com").await;
    let raw = mail.token();
    for bad in ["", "nope", &raw[..raw.len() - 2], &"x".repeat(500)] {
        app.post("/auth/accept-invitation", json!({"token": bad, "full_name": "X"}), None)
            .await
            .assert(400, "invalid_token");
    }
    app.post("/auth/accept-invitation", json!({"token": raw, "full_name": ""}), None)
        .await
        .assert(422, "validation_error");
    app.post("/auth/accept-invitation", json!({"token": raw, "full_name": "X", "password": "short"}), None)
        .await
        .assert(422, "validation_error");
    // A re-invitation replaces the pending one: the old link dies.
    assert_eq!(app.post("/tenant/invitations", json!({"email": "x@example.com"}), Some(&oat)).await.status, 201);
    app.post("/auth/accept-invitation", json!({"token": raw, "full_name": "X"}), None)
        .await
        .assert(400, "invalid_token");
    // Expired.
    app.store.execute_raw("UPDATE invitations SET expires_at = 1 WHERE revoked_at IS NULL").await.unwrap();
    let newest = invitation_mail(&sink, "x@example.com").await;
    app.post("/auth/accept-invitation", json!({"token": newest.token(), "full_name": "X"}), None)
        .await
        .assert(400, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE email = 'x@example.com'").await, 0);
}

#[tokio::test]
async fn a_revoked_invitation_cannot_be_accepted() {
    let (app, sink) = app_with_smtp().await;
    let owner = app.register("owner@example.com").await;
    verified(&app, "owner@example.com").await;
    let at = token(&owner, "access_token");
    let inv = app.post("/tenant/invitations", json!({"email": "z@example.com"}), Some(&at)).await.body;
    let id = inv["id"].as_str().unwrap();
    let mail = invitation_mail(&sink, "z@example.com").await;
    let del = app.send(app.client.delete(app.url(&format!("/tenant/invitations/{id}"))).bearer_auth(&at)).await;
    assert_eq!(del.status, 204);
    assert_eq!(
        app.send(app.client.delete(app.url(&format!("/tenant/invitations/{id}"))).bearer_auth(&at)).await.status,
        204
    );
    app.post("/auth/accept-invitation", json!({"token": mail.token(), "full_name": "Z"}), None)
        .await
        .assert(400, "invalid_token");
    let other = app.register("other@example.com").await;
    let r = app
        .send(
            app.client.delete(app.url(&format!("/tenant/invitations/{id}"))).bearer_auth(token(&other, "access_token")),
        )
        .await;
    r.assert(404, "not_found");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'invitation.revoked'").await, 1);
}

#[tokio::test]
async fn user_only_routes_refuse_api_keys() {
    let app = TestApp::spawn().await;
    let owner = app.register_verified("owner@example.com").await;
    let key = token(&app.create_key(&token(&owner, "access_token"), &["*"]).await, "raw_key");
    for (method, path, body) in [
        (Method::POST, "/auth/logout", json!({})),
        (
            Method::POST,
            "/auth/set-password",
            json!({"password": "another-strong-pass-9", "current_password": PASSWORD}),
        ),
        (Method::POST, "/auth/verify-email/resend", json!({})),
        (Method::DELETE, "/users/me", json!({"current_password": PASSWORD})),
    ] {
        let r = app.with_key(method.clone(), path, &key, Some(body)).await;
        r.assert(403, "user_principal_required");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.login("owner@example.com", PASSWORD).await.status, 200);
}
