//! What the binary's test files share: the binary without the caller's `MOLTFLOW_*` settings, a
//! free loopback port, one HTTP request, and [`eventually`] for what the processes do on their
//! own time.

use std::net::TcpListener;
use std::process::Command;

mod eventually;
#[allow(unused_imports)] // each test file uses the flavour it needs
pub use eventually::{eventually, eventually_async, eventually_async_every};

/// `moltflow` with every `MOLTFLOW_*` variable of the test's environment removed, so that each
/// test sets exactly what it means (CI exports `MOLTFLOW_TEST_*`, a developer may have more).
pub fn moltflow() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moltflow"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MOLTFLOW_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A `moltflow serve` process on `port`, killed (and reaped) when the test lets go of it.
#[allow(dead_code)] // only the multi-node test files start several servers
pub struct Node {
    pub port: u16,
    pub child: std::process::Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(dead_code)] // not every test file starts a server
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 request on a fresh loopback connection: `(status, headers in lower case, JSON
/// body)`, or `None` if nothing answers.
#[allow(dead_code)] // not every test file sends requests
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Option<(u16, String, serde_json::Value)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    let body = body.map(serde_json::Value::to_string).unwrap_or_default();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((status, head.to_lowercase(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null)))
}
