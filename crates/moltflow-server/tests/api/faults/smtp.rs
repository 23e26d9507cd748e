//! SMTP refusing and dropping mid-transaction. No worker runs (see `TestApp`): the test drives the
//! outbox a pass at a time ([`Outbox::run_once`]), moving the service's clock through the
//! backoff instead of sleeping; the SMTP server is real (`smtp::SmtpSink`), told to misbehave.

use std::time::Duration;

use moltflow_app::mail::worker::Outbox;

use crate::common::TestApp;
use crate::smtp::{Mail, SmtpFault, SmtpSink};

/// The first retry waits a minute, the next two, then four…
const BACKOFF: Duration = Duration::from_secs(60);

async fn driven_outbox() -> (TestApp, SmtpSink, Outbox) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(&[("smtp_url", &sink.url()), ("test_mail_backoff_ms", "60000")]).await;
    let outbox = Outbox::new(app.state.0.clone()).expect("outbox");
    (app, sink, outbox)
}

/// `(attempts, sent, failed for good, last error)` of the only mail.
async fn the_mail(app: &TestApp) -> (i64, bool, bool, bool) {
    let q = |cond: &str| format!("SELECT COUNT(*) FROM mail_outbox WHERE {cond}");
    (
        app.count("SELECT MAX(attempts) FROM mail_outbox").await,
        app.count(&q("sent_at IS NOT NULL")).await == 1,
        app.count(&q("failed_at IS NOT NULL")).await == 1,
        app.count(&q("last_error IS NOT NULL")).await == 1,
    )
}

#[tokio::test]
async fn refusals_and_drops_are_retried_with_growing_backoff_and_the_mail_arrives_once() {
    let (app, sink, outbox) = driven_outbox().await;
    sink.misbehave(&[SmtpFault::Greeting421, SmtpFault::Recipient451, SmtpFault::DropMidData]);
    app.register("ana@example.com").await;

    // 421 at the greeting: kept, retried in a minute, not before.
    assert_eq!(outbox.run_once().await, 1);
    assert_eq!(the_mail(&app).await, (1, false, false, true));
    app.state.clock.advance(BACKOFF - Duration::from_secs(1));
    assert_eq!(outbox.run_once().await, 0, "not due before the backoff");
    app.state.clock.advance(Duration::from_secs(1));
    // 451 to RCPT TO: the next wait doubles.
    assert_eq!(outbox.run_once().await, 1);
    assert_eq!(the_mail(&app).await, (2, false, false, true));
    app.state.clock.advance(BACKOFF);
    assert_eq!(outbox.run_once().await, 0, "the second wait is two minutes");
    app.state.clock.advance(BACKOFF);
    // The connection drops halfway through the message: the server keeps nothing.
    assert_eq!(outbox.run_once().await, 1);
    assert_eq!(the_mail(&app).await, (3, false, false, true));
    app.state.clock.advance(4 * BACKOFF);
    // Then the server takes it.
    assert_eq!(outbox.run_once().await, 1);
    assert_eq!(the_mail(&app).await, (4, true, false, false));
    assert_eq!(sink.connections(), 4);

    // Nothing lost, nothing twice, however long the outbox keeps running.
    app.state.clock.advance(Duration::from_secs(3600));
    assert_eq!(outbox.run_once().await, 0);
    let received = sink.messages();
    assert_eq!(received.len(), 1);
    assert!(received[0].acknowledged);
    assert_eq!(Mail::parse(&received[0]).rcpt, ["ana@example.com"]);
}

/// The one duplicate SMTP allows: the server took the whole message, and the connection dropped
/// before its `250`. The outbox cannot know the mail arrived and sends it again; both copies
/// carry the same Message-ID (docs/operations.md states this rate: one extra copy per lost
/// acknowledgement).
#[tokio::test]
async fn a_lost_acknowledgement_sends_the_mail_again_with_the_same_message_id() {
    let (app, sink, outbox) = driven_outbox().await;
    sink.misbehave(&[SmtpFault::DropAfterDot]);
    app.register("bo@example.com").await;

    assert_eq!(outbox.run_once().await, 1);
    assert_eq!(the_mail(&app).await, (1, false, false, true));
    app.state.clock.advance(BACKOFF);
    assert_eq!(outbox.run_once().await, 1);
    assert_eq!(the_mail(&app).await, (2, true, false, false));

    let received = sink.messages();
    assert_eq!(received.iter().map(|r| r.acknowledged).collect::<Vec<_>>(), [false, true]);
    let ids: Vec<_> = received.iter().map(|r| Mail::parse(r).header("Message-ID")).collect();
    assert!(ids[0].as_deref().is_some_and(|id| id.starts_with('<') && id.ends_with("@localhost>")), "{ids:?}");
    assert_eq!(ids[0], ids[1]);
}

/// A permanent refusal (`5xx`: no such user) is recorded as failed for good and not retried:
/// retrying would not help and may get the sender blocklisted.
#[tokio::test]
async fn a_permanent_refusal_is_recorded_and_not_retried() {
    let (app, sink, outbox) = driven_outbox().await;
    sink.misbehave(&[SmtpFault::Recipient550]);
    app.register("nobody@example.com").await;
    assert_eq!(outbox.run_once().await, 1);
    assert_eq!(the_mail(&app).await, (1, false, true, true));
    app.state.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(outbox.run_once().await, 0);
    assert_eq!((sink.connections(), sink.messages().len()), (1, 0));
}
