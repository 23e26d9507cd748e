//! Magic links: sign in by mail, never sign up; and the verification resend.

use serde_json::json;

use crate::common::{TestApp, token};
use crate::mail_outbox::app_with_smtp;
use crate::smtp::Mail;

fn magic(mails: &[Mail]) -> Vec<&Mail> {
    mails.iter().filter(|m| m.link().contains("/magic-link?token=")).collect()
}

#[tokio::test]
async fn magic_link_signs_in_and_verifies_the_email() {
    let (app, sink) = app_with_smtp().await;
    let r = app.post("/auth/register", json!({"email": "nopw@example.com", "full_name": "No Password"}), None).await;
    assert_eq!(r.status, 201);
    sink.wait_for(1).await;
    let r = app.post("/auth/magic-link/request", json!({"email": "nopw@example.com"}), None).await;
    assert_eq!(r.status, 202);
    let mails = sink.wait_for(2).await;
    let mail = magic(&mails)[0];
    assert_eq!(mail.header("Subject").as_deref(), Some("Your MoltFlow sign-in link"));

    let pair = app.post("/auth/magic-link/verify", json!({"token": mail.token()}), None).await;
    assert_eq!(pair.status, 200, "{}", pair.body);
    assert_eq!(pair.body["token_type"], "bearer");
    assert_eq!(pair.body["user"]["email"], "nopw@example.com");
    let me = app.get("/auth/me", Some(&token(&pair.body, "access_token"))).await;
    assert_eq!((me.body["email_verified"].as_bool(), me.body["has_password"].as_bool()), (Some(true), Some(false)));
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE method = 'magic_link'").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'login.succeeded' AND details LIKE '%magic_link%'")
            .await,
        1
    );
    app.post("/auth/magic-link/verify", json!({"token": mail.token()}), None).await.assert(400, "invalid_token");
}

#[tokio::test]
async fn magic_link_for_an_unknown_address_creates_nothing() {
    let (app, sink) = app_with_smtp().await;
    app.register("ana@example.com").await;
    sink.wait_for(1).await;
    let known = app.post("/auth/magic-link/request", json!({"email": "ana@example.com"}), None).await;
    let unknown = app.post("/auth/magic-link/request", json!({"email": "new@example.com"}), None).await;
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    assert_eq!(sink.wait_for(2).await.len(), 2, "the verification mail and one magic link");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM tenants").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE to_addr = 'new@example.com'").await, 0);
}

#[tokio::test]
async fn the_newest_magic_link_wins_and_expired_ones_fail() {
    let (app, sink) = app_with_smtp().await;
    app.register("ana@example.com").await;
    sink.wait_for(1).await;
    app.post("/auth/magic-link/request", json!({"email": "ana@example.com"}), None).await;
    let older = magic(&sink.wait_for(2).await)[0].token();
    app.post("/auth/magic-link/request", json!({"email": "ana@example.com"}), None).await;
    let newer = magic(&sink.wait_for(3).await)[1].token();
    app.post("/auth/magic-link/verify", json!({"token": older}), None).await.assert(400, "invalid_token");
    // 15 minutes and a moment later the newest one has expired too.
    app.store
        .execute_raw("UPDATE one_time_tokens SET expires_at = expires_at - 900001 WHERE kind = 'magic'")
        .await
        .unwrap();
    app.post("/auth/magic-link/verify", json!({"token": newer}), None).await.assert(400, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1, "only the registration's session");
}

#[tokio::test]
async fn magic_link_requests_are_limited_to_ten_a_minute_per_ip() {
    let app = TestApp::spawn().await;
    for _ in 0..10 {
        assert_eq!(app.post("/auth/magic-link/request", json!({"email": "x@example.com"}), None).await.status, 202);
    }
    app.post("/auth/magic-link/request", json!({"email": "x@example.com"}), None).await.assert(429, "rate_limited");
}

#[tokio::test]
async fn resend_mails_a_new_verification_link_until_the_email_is_verified() {
    let (app, sink) = app_with_smtp().await;
    let pair = app.register("ana@example.com").await;
    let access = token(&pair, "access_token");
    let first = sink.wait_for(1).await[0].token();
    let r = app.post("/auth/verify-email/resend", json!(null), Some(&access)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let second = sink.wait_for(2).await[1].token();
    assert_ne!(first, second);
    assert_eq!(app.post("/auth/verify-email", json!({"token": second}), None).await.status, 200);
    // Verified: the older link is spent too. The first proof ended the registration's session
    // and mailed its notice; signed in again, a resend sends nothing.
    app.post("/auth/verify-email", json!({"token": first}), None).await.assert(400, "invalid_token");
    app.post("/auth/verify-email/resend", json!(null), Some(&access)).await.assert(401, "invalid_token");
    assert_eq!(sink.wait_for(3).await.len(), 3);
    app.post("/auth/magic-link/request", json!({"email": "ana@example.com"}), None).await;
    let signed_in =
        app.post("/auth/magic-link/verify", json!({"token": sink.wait_for(4).await[3].token()}), None).await;
    let access = token(&signed_in.body, "access_token");
    assert_eq!(app.post("/auth/verify-email/resend", json!(null), Some(&access)).await.status, 202);
    assert_eq!(sink.wait_for(4).await.len(), 4, "nothing more was queued");
    app.post("/auth/verify-email/resend", json!(null), None).await.assert(401, "not_authenticated");
}

#[tokio::test]
async fn expired_verification_links_fail() {
    let (app, sink) = app_with_smtp().await;
    let pair = app.register("ana@example.com").await;
    let t = sink.wait_for(1).await[0].token();
    app.store.execute_raw("UPDATE one_time_tokens SET expires_at = created_at + 172800000 - 172800001").await.unwrap();
    app.post("/auth/verify-email", json!({"token": t}), None).await.assert(400, "invalid_token");
    let me = app.get("/auth/me", Some(&token(&pair, "access_token"))).await;
    assert_eq!(me.body["email_verified"], false);
}
