//! Slow and oversized requests against the running server, over raw TCP: headers trickled a byte
//! at a time (slowloris), a body that never finishes, a 10 MB body.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use crate::common::{TestApp, owner};

/// Deadlines short enough for a test; the defaults are 10 s and 15 s.
async fn impatient_app() -> TestApp {
    let mut app = TestApp::spawn_with(&[("header_timeout_ms", "300"), ("body_timeout_ms", "300")]).await;
    // A fresh connection per request: the server closes idle ones after 300 ms too.
    app.client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    app
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.expect("connect")
}

/// What the server said until it closed the connection (a reset ends it too); panics if it
/// keeps the connection open for 5 s.
async fn said_until_closed(mut read: OwnedReadHalf) -> String {
    let mut said = Vec::new();
    let mut buf = [0u8; 8192];
    let reading = async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => said.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), reading).await.expect("the server closes the connection");
    String::from_utf8_lossy(&said).into_owned()
}

#[tokio::test]
async fn trickled_headers_get_408_and_a_closed_connection_while_other_requests_are_served() {
    let app = impatient_app().await;
    let (access, _) = owner(&app, "slow@example.com").await;
    let mut slow = Vec::new();
    for _ in 0..40 {
        let (read, mut write) = connect(&app).await.into_split();
        write.write_all(b"GET /api/v2/auth/me HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.expect("write");
        // A byte every 50 ms, for ever: each one keeps a naive server waiting.
        let trickle = tokio::spawn(async move {
            while write.write_all(b"a").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        slow.push((read, trickle));
    }
    for _ in 0..5 {
        let me = app.get("/auth/me", Some(&access)).await;
        assert_eq!(me.status, 200, "served while 40 clients trickle: {}", me.body);
    }
    for (read, trickle) in slow {
        let said = said_until_closed(read).await;
        trickle.abort();
        assert!(said.starts_with("HTTP/1.1 408 "), "{said}");
        assert!(said.contains(r#""code":"request_timeout""#) && said.contains("x-request-id: "), "{said}");
    }
    // A connection that sends nothing is closed without a word.
    let (idle, _write) = connect(&app).await.into_split();
    assert_eq!(said_until_closed(idle).await, "");
    assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200);
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_request_timeout_and_changes_nothing() {
    let app = impatient_app().await;
    let (read, mut write) = connect(&app).await.into_split();
    let head = "POST /api/v2/auth/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n";
    write.write_all(head.as_bytes()).await.expect("write");
    write.write_all(br#"{"email": "late@example.com", "password": "sunny-"#).await.expect("write");
    let said = said_until_closed(read).await;
    assert!(said.starts_with("HTTP/1.1 408 "), "{said}");
    assert!(said.contains(r#""code":"request_timeout""#), "{said}");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

/// 10 MB declared by `Content-Length` or streamed in chunks, to a JSON route and to the webhook
/// (which reads raw bytes): the server answers `400 body_too_large` after reading at most the
/// limit (64 KiB here), while the client has sent a fraction of it, and the connection is closed
/// rather than drained.
#[tokio::test]
async fn a_10_mb_body_is_refused_with_400_body_too_large_before_it_is_all_sent() {
    let app = TestApp::spawn_with(&[("stripe_webhook_secret", "whsec_big")]).await;
    let (access, _) = owner(&app, "big@example.com").await;
    const TEN_MB: usize = 10 * 1024 * 1024;
    let routes = ["/api/v2/auth/register", "/api/v2/billing/webhook"];
    for (path, chunked) in routes.into_iter().flat_map(|path| [(path, false), (path, true)]) {
        let (read, mut write) = connect(&app).await.into_split();
        let framing =
            if chunked { "Transfer-Encoding: chunked".to_owned() } else { format!("Content-Length: {TEN_MB}") };
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{framing}\r\n\r\n");
        write.write_all(head.as_bytes()).await.expect("write");
        let answer = tokio::spawn(said_until_closed(read));
        // One MiB of the ten, then wait for the answer.
        let piece = vec![b' '; 64 * 1024];
        for _ in 0..16 {
            let sent = if chunked {
                let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                framed.extend_from_slice(&piece);
                framed.extend_from_slice(b"\r\n");
                write.write_all(&framed).await
            } else {
                write.write_all(&piece).await
            };
            if sent.is_err() {
                break; // the server has answered and closed
            }
        }
        let said = answer.await.expect("reader");
        assert!(said.starts_with("HTTP/1.1 400 "), "{path} chunked={chunked}: {said}");
        assert!(said.contains(r#""code":"body_too_large""#), "{path} chunked={chunked}: {said}");
    }
    assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}
