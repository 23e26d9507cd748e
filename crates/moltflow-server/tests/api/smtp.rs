//! A real SMTP server on loopback for the mail tests: it speaks enough of RFC 5321 for lettre
//! (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps every message it accepted, and can be stopped
//! (connections refused) and started again on the same port. It can also be told to misbehave
//! on the next connections ([`SmtpFault`]), for the fault tests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use moltflow_app::mail::worker::Outbox;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::common::eventually;

/// One accepted message: the envelope recipients and the raw message.
#[derive(Clone, Debug)]
pub struct Received {
    pub rcpt: Vec<String>,
    pub raw: String,
    /// Whether the client heard `250` for it (a connection dropped after the final dot leaves
    /// the server holding a message the client believes failed).
    pub acknowledged: bool,
}

/// What the server does with one connection instead of its normal service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpFault {
    /// Greets with `421` (service not available) and hangs up.
    Greeting421,
    /// Answers `451` (try again later) to `RCPT TO`.
    Recipient451,
    /// Answers `550` (no such user: refused for good) to `RCPT TO`.
    Recipient550,
    /// Hangs up in the middle of the message, before its final dot.
    DropMidData,
    /// Takes the whole message, then hangs up instead of answering `250`.
    DropAfterDot,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    faults: Mutex<VecDeque<SmtpFault>>,
    connections: AtomicUsize,
}

pub struct SmtpSink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
    /// The app whose outbox [`SmtpSink::wait_for`] runs once, when no worker delivers its mail.
    pub outbox: Option<moltflow_server::AppState>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = bind("127.0.0.1:0".parse().expect("addr"));
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared::default());
        let task = Some(tokio::spawn(accept(listener, shared.clone())));
        SmtpSink { addr, shared, task, outbox: None }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Closes the listener and every open connection: new connections are refused.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        let listener = bind(self.addr);
        self.task = Some(tokio::spawn(accept(listener, self.shared.clone())));
    }

    /// The next connections get these faults, one each, in order; later ones are served.
    pub fn misbehave(&self, faults: &[SmtpFault]) {
        self.shared.faults.lock().expect("lock").extend(faults);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// At least `n` messages; returns them all. With an [`SmtpSink::outbox`], runs it once first
    /// (the sink has accepted every mail it delivered when that returns): nothing to wait for.
    /// Else (a worker delivers) waits up to 10 s.
    #[track_caller]
    pub fn wait_for(&self, n: usize) -> impl Future<Output = Vec<Mail>> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            if let Some(state) = &self.outbox {
                Outbox::new(state.0.clone()).expect("outbox").run_once().await;
                let got = self.mails();
                assert!(got.len() >= n, "{caller}: expected {n} mails, the SMTP server has {}", got.len());
                return got;
            }
            self.poll_for(n).await
        }
    }

    /// Every message accepted so far, decoded.
    pub fn mails(&self) -> Vec<Mail> {
        self.messages().iter().map(Mail::parse).collect()
    }

    /// Waits (up to 10 s) for a worker running on real time to deliver `n` messages.
    async fn poll_for(&self, n: usize) -> Vec<Mail> {
        // A worker on another task delivers: poll it (only the worker's own tests do this).
        eventually(Duration::from_secs(10), format!("{n} mails at the SMTP server"), async || {
            let got = self.messages();
            if got.len() >= n { Ok(got.iter().map(Mail::parse).collect()) } else { Err(got.len()) }
        })
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    // The restarted server takes the port back although old connections may linger in TIME_WAIT.
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket.bind(addr).expect("bind SMTP sink");
    socket.listen(64).expect("listen")
}

/// Accepts connections; aborting this task drops the listener and every session with it.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let fault = shared.faults.lock().expect("lock").pop_front();
        sessions.spawn(session(stream, shared.clone(), fault));
    }
}

async fn session(stream: TcpStream, shared: Arc<Shared>, fault: Option<SmtpFault>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if fault == Some(SmtpFault::Greeting421) {
        return write.write_all(b"421 4.3.2 sink.test service not available, try later\r\n").await;
    }
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut rcpt = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") {
            b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if command.starts_with("HELO") || command.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if command.starts_with("MAIL FROM:") || command.starts_with("RSET") {
            rcpt.clear();
            b"250 OK\r\n"
        } else if command.starts_with("RCPT TO:") && fault == Some(SmtpFault::Recipient451) {
            b"451 4.3.0 try again later\r\n"
        } else if command.starts_with("RCPT TO:") && fault == Some(SmtpFault::Recipient550) {
            b"550 5.1.1 no such user here\r\n"
        } else if command.starts_with("RCPT TO:") {
            rcpt.push(line.trim_end()[8..].trim().trim_matches(['<', '>']).to_owned());
            b"250 OK\r\n"
        } else if command == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut raw = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                if fault == Some(SmtpFault::DropMidData) && raw.len() > 100 {
                    return Ok(()); // half a message: a server discards it
                }
                // Dot-stuffing: a leading dot was doubled by the client.
                raw.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
            }
            let acknowledged = fault != Some(SmtpFault::DropAfterDot);
            shared.received.lock().expect("lock").push(Received { rcpt: std::mem::take(&mut rcpt), raw, acknowledged });
            if !acknowledged {
                return Ok(());
            }
            b"250 OK queued\r\n"
        } else if command == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 Command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// A delivered mail, decoded: headers, the plain-text and HTML parts.
#[derive(Clone, Debug)]
pub struct Mail {
    pub rcpt: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub html: String,
    pub raw: String,
}

impl Mail {
    pub fn parse(received: &Received) -> Mail {
        let mut mail = Mail::from_raw(&received.raw);
        mail.rcpt = received.rcpt.clone();
        mail
    }

    pub fn from_raw(raw: &str) -> Mail {
        let (head, body) = split_head(raw);
        let headers = parse_headers(head);
        let content_type = header_in(&headers, "content-type").unwrap_or_default();
        let boundary = content_type.split("boundary=").nth(1).map(|b| b.trim_matches('"').to_owned());
        let (mut text, mut html) = (String::new(), String::new());
        for part in boundary
            .map(|b| body.split(&format!("--{b}")).map(str::to_owned).collect())
            .unwrap_or_else(|| vec![raw.to_owned()])
        {
            let (part_head, part_body) = split_head(part.trim_start_matches(['\r', '\n']));
            let part_headers = parse_headers(part_head);
            let kind = header_in(&part_headers, "content-type").unwrap_or_default();
            let decoded = decode(part_body, &header_in(&part_headers, "content-transfer-encoding").unwrap_or_default());
            if kind.starts_with("text/plain") {
                text = decoded;
            } else if kind.starts_with("text/html") {
                html = decoded;
            }
        }
        Mail { rcpt: Vec::new(), headers, text, html, raw: raw.to_owned() }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        header_in(&self.headers, name)
    }

    /// The token of the first link in the plain-text part.
    pub fn token(&self) -> String {
        let start = self.text.find("token=").unwrap_or_else(|| panic!("no link in {}", self.text)) + 6;
        self.text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
    }

    /// The first link in the plain-text part.
    pub fn link(&self) -> String {
        self.text.split_whitespace().find(|w| w.starts_with("http")).unwrap_or_default().to_owned()
    }
}

fn split_head(s: &str) -> (&str, &str) {
    s.split_once("\r\n\r\n").or_else(|| s.split_once("\n\n")).unwrap_or((s, ""))
}

/// Unfolds continuation lines and splits `Name: value`.
fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

fn header_in(headers: &[(String, String)], name: &str) -> Option<String> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
}

fn decode(body: &str, encoding: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "").replace("=\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'=' && i + 3 <= bytes.len() {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    if let Ok(b) = u8::from_str_radix(hex, 16) {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        }
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD.decode(compact).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => body.to_owned(),
    }
}

/// The `.eml` files the file transport wrote, oldest first.
pub fn mail_files(dir: &std::path::Path) -> Vec<Mail> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "eml")).collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.iter().map(|p| Mail::from_raw(&std::fs::read_to_string(p).expect("read eml"))).collect()
}
