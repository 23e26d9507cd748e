//! Password reset by mail: the flow end to end, enumeration safety, caps, and bad tokens.

use serde_json::json;

use crate::common::{PASSWORD, TestApp, token};
use crate::mail_outbox::app_with_smtp;
use crate::smtp::{Mail, SmtpSink};

const NEW_PASSWORD: &str = "quiet-meadow-lantern-77";

/// Registers, then waits for the verification mail so later mails can be counted from 2.
async fn registered(app: &TestApp, sink: &SmtpSink, email: &str) -> serde_json::Value {
    let pair = app.register(email).await;
    sink.wait_for(sink.messages().len() + 1).await;
    pair
}

fn resets(mails: &[Mail]) -> Vec<&Mail> {
    mails.iter().filter(|m| m.header("Subject").is_some_and(|s| s.contains("Reset"))).collect()
}

#[tokio::test]
async fn password_reset_by_mail_sets_the_password_and_ends_every_session() {
    let (app, sink) = app_with_smtp().await;
    let first = registered(&app, &sink, "ana@example.com").await;
    let second = app.login("ana@example.com", PASSWORD).await.body;
    let r = app.post("/auth/forgot-password", json!({"email": "ANA@example.com "}), None).await;
    assert_eq!(r.status, 202);
    let mails = sink.wait_for(2).await;
    let mail = resets(&mails)[0];
    assert_eq!(mail.rcpt, ["ana@example.com"]);
    assert!(mail.link().starts_with(&format!("{}/reset-password?token=", app.base)));

    let r = app.post("/auth/reset-password", json!({"token": mail.token(), "new_password": NEW_PASSWORD}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Every session ended at once, access and refresh tokens alike.
    for pair in [&first, &second] {
        app.get("/auth/me", Some(&token(pair, "access_token"))).await.assert(401, "invalid_token");
        let refresh = app.post("/auth/refresh", json!({"refresh_token": token(pair, "refresh_token")}), None).await;
        assert_eq!(refresh.status, 401);
    }
    app.login("ana@example.com", PASSWORD).await.assert(401, "invalid_credentials");
    let login = app.login("ana@example.com", NEW_PASSWORD).await;
    assert_eq!(login.status, 200);
    let me = app.get("/auth/me", Some(&token(&login.body, "access_token"))).await;
    assert_eq!(me.body["email_verified"], true, "the mail reached the address");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'password.reset'").await, 1);
    // Single use.
    app.post("/auth/reset-password", json!({"token": mail.token(), "new_password": "another-fine-phrase-99"}), None)
        .await
        .assert(400, "invalid_token");
    assert_eq!(app.login("ana@example.com", NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn forgot_password_answers_unknown_addresses_the_same_and_mails_nothing() {
    let (app, sink) = app_with_smtp().await;
    registered(&app, &sink, "ana@example.com").await;
    let known = app.post("/auth/forgot-password", json!({"email": "ana@example.com"}), None).await;
    let unknown = app.post("/auth/forgot-password", json!({"email": "nobody@example.com"}), None).await;
    assert_eq!((known.status, unknown.status), (202, 202));
    assert_eq!(known.body, unknown.body);
    // Every queued mail is delivered by now: the unknown address got none.
    assert_eq!(sink.wait_for(2).await.len(), 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE to_addr = 'nobody@example.com'").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM one_time_tokens WHERE email = 'nobody@example.com'").await, 0);
}

#[tokio::test]
async fn the_newest_reset_link_wins_and_older_ones_stop_working() {
    let (app, sink) = app_with_smtp().await;
    registered(&app, &sink, "ana@example.com").await;
    app.post("/auth/forgot-password", json!({"email": "ana@example.com"}), None).await;
    let older = resets(&sink.wait_for(2).await)[0].token();
    app.post("/auth/forgot-password", json!({"email": "ana@example.com"}), None).await;
    let mails = sink.wait_for(3).await;
    let newer = resets(&mails)[1].token();
    assert_ne!(older, newer);
    app.post("/auth/reset-password", json!({"token": older, "new_password": NEW_PASSWORD}), None)
        .await
        .assert(400, "invalid_token");
    let r = app.post("/auth/reset-password", json!({"token": newer, "new_password": NEW_PASSWORD}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn an_address_gets_at_most_three_mails_an_hour() {
    let (app, sink) = app_with_smtp().await;
    registered(&app, &sink, "ana@example.com").await;
    for _ in 0..4 {
        let r = app.post("/auth/forgot-password", json!({"email": "ana@example.com"}), None).await;
        assert_eq!(r.status, 202, "still accepted over the cap");
    }
    assert_eq!(sink.wait_for(3).await.len(), 3, "the verification mail and two resets");
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE to_addr = 'ana@example.com'").await, 3);
    // An hour later the address may receive mail again.
    app.store.execute_raw("UPDATE mail_outbox SET created_at = created_at - 3600001").await.unwrap();
    app.post("/auth/magic-link/request", json!({"email": "ana@example.com"}), None).await;
    sink.wait_for(4).await;
}

#[tokio::test]
async fn forgot_password_is_limited_to_ten_a_minute_per_ip() {
    let app = TestApp::spawn().await;
    for i in 0..10 {
        let r = app.post("/auth/forgot-password", json!({"email": format!("u{i}@example.com")}), None).await;
        assert_eq!(r.status, 202);
    }
    let r = app.post("/auth/forgot-password", json!({"email": "u@example.com"}), None).await;
    r.assert(429, "rate_limited");
    assert!(r.header("retry-after").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1));
}

#[tokio::test]
async fn expired_truncated_foreign_and_made_up_tokens_change_nothing() {
    let (app, sink) = app_with_smtp().await;
    let pair = registered(&app, &sink, "ana@example.com").await;
    let verify_token = sink.wait_for(1).await[0].token();
    app.post("/auth/forgot-password", json!({"email": "ana@example.com"}), None).await;
    let reset_token = resets(&sink.wait_for(2).await)[0].token();
    let hash_before = app.count("SELECT COUNT(*) FROM users WHERE password_hash IS NOT NULL").await;
    assert_eq!(hash_before, 1);

    let truncated = reset_token[..30].to_owned();
    let extended = format!("{reset_token}x");
    let garbage = "a".repeat(43);
    let huge = "b".repeat(10_000);
    for bad in [truncated.as_str(), extended.as_str(), garbage.as_str(), verify_token.as_str(), "", huge.as_str()] {
        app.post("/auth/reset-password", json!({"token": bad, "new_password": NEW_PASSWORD}), None)
            .await
            .assert(400, "invalid_token");
    }
    // A reset token is no verification or sign-in token either.
    app.post("/auth/verify-email", json!({"token": reset_token}), None).await.assert(400, "invalid_token");
    app.post("/auth/magic-link/verify", json!({"token": reset_token}), None).await.assert(400, "invalid_token");
    // Expired.
    app.store
        .execute_raw("UPDATE one_time_tokens SET expires_at = expires_at - 3600001 WHERE kind = 'reset'")
        .await
        .unwrap();
    app.post("/auth/reset-password", json!({"token": reset_token, "new_password": NEW_PASSWORD}), None)
        .await
        .assert(400, "invalid_token");

    assert_eq!(app.login("ana@example.com", PASSWORD).await.status, 200, "password unchanged");
    assert_eq!(app.get("/auth/me", Some(&token(&pair, "access_token"))).await.status, 200, "sessions untouched");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'password.reset'").await, 0);
}

#[tokio::test]
async fn weak_passwords_are_refused_and_the_link_stays_usable() {
    let (app, sink) = app_with_smtp().await;
    registered(&app, &sink, "ana@example.com").await;
    app.post("/auth/forgot-password", json!({"email": "ana@example.com"}), None).await;
    let t = resets(&sink.wait_for(2).await)[0].token();
    let long = "correct-horse-".repeat(10);
    for bad in ["short1!", long.as_str(), "password", "12345678", "ana@example.com", "ANA@EXAMPLE.COM"] {
        let r = app.post("/auth/reset-password", json!({"token": t, "new_password": bad}), None).await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], json!(["body", "new_password"]), "{bad}");
    }
    assert_eq!(app.login("ana@example.com", PASSWORD).await.status, 200);
    let r = app.post("/auth/reset-password", json!({"token": t, "new_password": NEW_PASSWORD}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
