//! The HTTP/1 connection loop under the router, with the deadlines `axum::serve` lacks: it sets
//! no timer, so a client trickling its headers (slowloris) or its body holds a connection, its
//! buffers and a task for as long as it likes.
//!
//! - Headers must arrive within `header_timeout` (hyper's header read timeout, which also ends
//!   an idle keep-alive connection). A client that sent part of a request then hears
//!   `408 request_timeout` and the connection closes; an idle one is closed silently.
//! - A body must arrive within `body_timeout` of its headers: the body fails at that deadline
//!   (see [`BodyTimedOut`]) and the JSON extractor answers `408 request_timeout`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use moltflow_app::config::Config;

/// How long the client of a request taking too long to arrive has to take its `408`.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl Deadlines {
    pub fn of(config: &Config) -> Deadlines {
        Deadlines { header_timeout: config.server.header_timeout, body_timeout: config.server.body_timeout }
    }
}

tokio::task_local! {
    /// The address of the connection a task serves: its requests are served on its task.
    static PEER: SocketAddr;
}

/// The peer address of the connection whose request is being served, if any.
///
/// Kept for the connection's task rather than put in each request's extensions as
/// `ConnectInfo`: one more extension made every request grow its extension map, allocations
/// per request for an address only throttles and [`Origin`](crate::extract::Origin) read
/// (BENCHMARKS.md, "the request path"). Code that serves a request on another task must read it first (`/mcp` builds its tool
/// calls' `Origin` before the MCP service spawns them).
pub fn connection_peer() -> Option<SocketAddr> {
    PEER.try_with(|peer| *peer).ok()
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish (connections close once their current response is sent) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; when all are gone, the drain is over.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let stop = stop_rx.clone();
        let alive = alive_tx.clone();
        tokio::spawn(PEER.scope(peer, async move {
            connection(stream, peer, router, deadlines, stop).await;
            drop(alive);
        }));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

/// A failed accept: a connection that went away before it was accepted is nothing; anything
/// else (out of file descriptors) is logged and waited out, not spun on.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    deadlines: Deadlines,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let req = req.map(|inner| {
            if http_body::Body::is_end_stream(&inner) {
                // No body (most GETs): nothing to wait for, no clock to read.
                return Body::new(inner);
            }
            // The headers are in: the body's deadline starts now.
            let deadline = Instant::now() + deadlines.body_timeout;
            Body::new(DeadlineBody { inner, deadline, timer: None })
        });
        // Not boxed: the router's future is `Unpin` as it is, so the connection stays `Unpin` and
        // its socket can be taken back for a `408`.
        router.clone().oneshot(req)
    });
    let mut builder = http1::Builder::new();
    builder.timer(ConnectionTimer::new(deadlines.header_timeout)).header_read_timeout(deadlines.header_timeout);
    let mut conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut stopping = *stop.borrow();
    if stopping {
        Pin::new(&mut conn).graceful_shutdown();
    }
    let result = loop {
        tokio::select! {
            result = &mut conn => break result,
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        }
    };
    if let Err(e) = result
        && e.is_timeout()
    {
        // Hyper gives up on slow headers without a word; a client that started a request is
        // told why (RFC 9110 §15.5.9), an idle keep-alive connection is just closed.
        let parts = conn.into_parts();
        if !parts.read_buf.is_empty() {
            metrics::counter!("http_header_timeouts_total").increment(1);
            tracing::debug!(%peer, "request headers did not arrive in time: answering 408");
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, request_timeout(parts.io.into_inner())).await;
        }
    }
}

/// Writes `408 request_timeout` in the contract's error shape and closes the connection.
async fn request_timeout(mut stream: TcpStream) -> std::io::Result<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({
        "detail": "The request did not arrive in time",
        "code": "request_timeout",
        "request_id": id,
    })
    .to_string();
    let head = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// hyper's timer for one connection, which it asks for a new sleep for the headers of every
/// request. `TokioTimer` would make each a tokio timer of its own, registered in the runtime's
/// timer wheel and removed again (a lock each way, and a runtime handle looked up; BENCHMARKS.md,
/// "the request path"). Here every sleep of the connection moves one long-lived tokio
/// timer instead; moving a registered timer later is an atomic update.
///
/// hyper's HTTP/1 server has one sleep of a connection in use at a time (the header read
/// timeout), which is what this relies on: the sleep polled last sets the shared timer.
#[derive(Clone)]
struct ConnectionTimer {
    shared: Arc<Mutex<Pin<Box<Sleep>>>>,
}

impl ConnectionTimer {
    fn new(first: Duration) -> ConnectionTimer {
        ConnectionTimer { shared: Arc::new(Mutex::new(Box::pin(tokio::time::sleep(first)))) }
    }
}

impl hyper::rt::Timer for ConnectionTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ConnectionSleep { shared: self.shared.clone(), deadline: deadline.into() })
    }
}

/// One of hyper's sleeps, kept by its connection's [`ConnectionTimer`].
struct ConnectionSleep {
    shared: Arc<Mutex<Pin<Box<Sleep>>>>,
    deadline: Instant,
}

impl Future for ConnectionSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut timer = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A timer set to fire earlier is left as it is (each request's deadline is later than the
        // last one's): it wakes this sleep early once, and only then is it moved to the deadline.
        if timer.deadline() > self.deadline {
            timer.as_mut().reset(self.deadline);
        }
        while timer.as_mut().poll(cx).is_ready() {
            if timer.deadline() >= self.deadline {
                return Poll::Ready(());
            }
            timer.as_mut().reset(self.deadline);
        }
        Poll::Pending
    }
}

impl hyper::rt::Sleep for ConnectionSleep {}

/// The body did not arrive within `MOLTFLOW_BODY_TIMEOUT_MS` of the headers.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// Whether `err` (or an error it wraps) is [`BodyTimedOut`].
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Armed the first time the body is not ready: most bodies never wait, most GETs are never read.
    timer: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        match self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline))).as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
