//! The outbox over a real SMTP server on loopback, and the file transport.

use std::time::Duration;

use moltflow_app::mail::worker::OutboxWorker;
use serde_json::json;

use crate::common::{PASSWORD, TestApp, token};
use crate::smtp::{SmtpSink, mail_files};

/// An app that mails over SMTP to a sink; no worker runs: `sink.wait_for` runs the outbox once.
pub async fn app_with_smtp() -> (TestApp, SmtpSink) {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(&[("smtp_url", &sink.url())]).await;
    sink.outbox = Some(app.state.clone());
    (app, sink)
}

#[tokio::test]
async fn registration_mail_arrives_over_smtp_and_its_link_verifies_the_email() {
    let (app, sink) = app_with_smtp().await;
    let pair = app.register("ana@example.com").await;
    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.rcpt, ["ana@example.com"]);
    assert_eq!(mail.header("To").as_deref(), Some("ana@example.com"));
    assert_eq!(mail.header("From").as_deref(), Some("MoltFlow <no-reply@localhost>"));
    assert_eq!(mail.header("Subject").as_deref(), Some("Confirm your email address for MoltFlow"));
    // Both parts carry the same link, built from MOLTFLOW_PUBLIC_URL.
    let link = mail.link();
    assert!(link.starts_with(&format!("{}/verify-email?token=", app.base)), "{link}");
    assert!(mail.html.contains(&link), "{}", mail.html);
    let t = mail.token();
    assert_eq!(t.len(), 43);

    let r = app.post("/auth/verify-email", json!({"token": t}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE email_verified = TRUE").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'email.verified'").await, 1);
    // The first proof of the mailbox ended the registration's session, and says so by mail.
    app.get("/auth/me", Some(&token(&pair, "access_token"))).await.assert(401, "invalid_token");
    let notice = sink.wait_for(2).await.remove(1);
    assert_eq!(notice.header("Subject").as_deref(), Some("Your MoltFlow address is confirmed"));
    // Single use.
    app.post("/auth/verify-email", json!({"token": t}), None).await.assert(400, "invalid_token");
    // Sent: the row is kept (for the hourly cap) without its bodies, and only the hash of the token is stored.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NOT NULL AND text_body = '' AND html_body = ''")
            .await,
        2
    );
    assert_eq!(app.count_with("SELECT COUNT(*) FROM one_time_tokens WHERE token_hash = $1", &[&t]).await, 0);
}

#[tokio::test]
async fn mail_queued_while_smtp_is_down_is_delivered_exactly_once_after_it_returns() {
    let (app, mut sink) = app_with_smtp().await;
    sink.stop().await;
    for i in 0..3 {
        app.register(&format!("user{i}@example.com")).await;
    }
    app.post("/auth/forgot-password", json!({"email": "user0@example.com"}), None).await;
    // Every mail is attempted and fails; each failure is recorded and the mail kept.
    assert_eq!(app.deliver_mail().await, 4);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL AND attempts = 1 AND last_error IS NOT NULL")
            .await,
        4
    );
    assert_eq!(sink.messages().len(), 0);
    // Nothing is tried again before its backoff (a minute in tests) has passed, even with SMTP back.
    sink.restart();
    assert_eq!(app.deliver_mail().await, 0);

    app.advance(Duration::from_secs(61));
    let mails = sink.wait_for(4).await;
    // Another pass finds nothing left: each mail was sent once.
    assert_eq!(app.deliver_mail().await, 0);
    assert_eq!(sink.messages().len(), 4);
    let mut rcpts: Vec<String> = mails.iter().map(|m| m.rcpt.join(",")).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["user0@example.com", "user0@example.com", "user1@example.com", "user2@example.com"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NOT NULL AND last_error IS NULL").await, 4);
    // The reset link delivered late still works.
    let reset = mails.iter().find(|m| m.header("Subject").is_some_and(|s| s.contains("Reset"))).expect("reset mail");
    let r = app
        .post("/auth/reset-password", json!({"token": reset.token(), "new_password": "quiet-meadow-lantern-77"}), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn the_worker_delivers_queued_mail_and_mail_survives_its_restart() {
    let sink = SmtpSink::start().await;
    let mut app = TestApp::spawn_with_worker(&[("smtp_url", &sink.url())]).await;
    app.register("ana@example.com").await;
    // The worker runs on its own task and wakes on queued mail: wait for it.
    assert_eq!(sink.wait_for(1).await[0].rcpt, ["ana@example.com"]);

    app.worker.take().expect("worker").stop().await;
    app.register("bea@example.com").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL").await, 1, "queued, not sent");
    app.worker = Some(OutboxWorker::spawn(app.state.0.clone()).expect("worker"));
    let mail = sink.wait_for(2).await.remove(1);
    assert_eq!(mail.rcpt, ["bea@example.com"]);
}

#[tokio::test]
async fn without_smtp_mail_is_written_as_eml_files_that_complete_the_flow() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    assert_eq!(app.deliver_mail().await, 1);
    let files = mail_files(&app.mail_dir);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].header("To").as_deref(), Some("ana@example.com"));
    let r = app.post("/auth/verify-email", json!({"token": files[0].token()}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE email_verified = TRUE").await, 1);
    app.get("/users/me", Some(&token(&pair, "access_token"))).await.assert(401, "invalid_token");
    // The notice of the first proof is a file too.
    assert_eq!(app.deliver_mail().await, 1);
    assert!(mail_files(&app.mail_dir).iter().any(|m| m.header("Subject").is_some_and(|s| s.contains("confirmed"))));
}

#[tokio::test]
async fn header_injection_through_names_and_emails_is_refused() {
    let (app, sink) = app_with_smtp().await;
    for body in [
        json!({"email": "eve@example.com\r\nBcc: victim@example.com", "password": PASSWORD, "full_name": "Eve"}),
        json!({"email": "eve@example.com", "password": PASSWORD, "full_name": "Eve\r\nBcc: victim@example.com"}),
        json!({"email": "eve@example.com", "password": PASSWORD, "full_name": "Eve\nSubject: hi"}),
    ] {
        assert_eq!(app.post("/auth/register", body, None).await.status, 422);
    }
    for email in ["eve@example.com\r\nBcc: victim@example.com", "eve@example.com\nX: y"] {
        app.post("/auth/forgot-password", json!({"email": email}), None).await.assert(422, "validation_error");
        app.post("/auth/magic-link/request", json!({"email": email}), None).await.assert(422, "validation_error");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox").await, 0);

    // A name with markup and non-ASCII goes into the body only, escaped in the HTML part.
    let r = app
        .post(
            "/auth/register",
            json!({"email": "eve@example.com", "password": PASSWORD, "full_name": "Ève <script>x</script>"}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let pair = r.body;
    let mail = sink.wait_for(1).await.remove(0);
    assert!(mail.html.contains("Ève &lt;script&gt;x&lt;/script&gt;"), "{}", mail.html);
    assert!(!mail.html.contains("<script>"));
    assert!(mail.text.contains("Ève <script>x</script>"));
    let (head, _) = mail.raw.split_once("\r\n\r\n").expect("head");
    assert!(!head.contains("script") && !head.contains("Bcc"), "{head}");
    assert_eq!(mail.rcpt, ["eve@example.com"]);

    let r = app
        .put_json(
            reqwest::Method::PATCH,
            "/users/me",
            json!({"full_name": "Eve\r\nBcc: x@y.z"}),
            Some(&token(&pair, "access_token")),
        )
        .await;
    r.assert(422, "validation_error");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "full_name"]));
}
