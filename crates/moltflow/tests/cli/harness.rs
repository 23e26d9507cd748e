//! What the `moltflow` binary's operator tests share: a temp dir, raw HTTP on loopback, a server
//! started and awaited, its exit awaited, its output collected ([`Running`]), and an SMTP sink.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::{eventually, moltflow as bin};

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moltflow-cli-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

pub fn http(port: u16, request: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

pub fn get(port: u16, path: &str) -> Option<String> {
    http(port, &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
}

pub fn start(dir: &PathBuf, port: u16) -> Child {
    bin()
        .arg("serve")
        .current_dir(dir)
        .env("MOLTFLOW_BIND", format!("127.0.0.1:{port}"))
        .env("MOLTFLOW_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn wait_ready(port: u16) {
    // A process starting up: nothing to wait on but its socket.
    eventually(Duration::from_secs(20), format!("the server on port {port} to answer /healthz"), || {
        let answer = get(port, "/healthz");
        if answer.as_deref().is_some_and(|r| r.starts_with("HTTP/1.1 200")) { Ok(()) } else { Err(answer) }
    });
}

/// Waits (up to `within`) for `child` to exit on its own; returns how. Killed if it does not.
pub fn exit_of(child: &mut Child, within: Duration, what: &str) -> std::process::ExitStatus {
    struct KillUnlessExited<'a>(&'a mut Child);
    impl Drop for KillUnlessExited<'_> {
        fn drop(&mut self) {
            if self.0.try_wait().ok().flatten().is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let guard = KillUnlessExited(child);
    // Another process deciding on its own time: poll its exit.
    eventually(within, what, || guard.0.try_wait().unwrap().ok_or("still running"))
}

/// A `moltflow serve` whose stdout and stderr are collected as they come, for tests that read
/// what an operator sees. Killed on drop.
pub struct Running {
    pub child: Child,
    pub output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    pub fn start(dir: &PathBuf, port: u16, env: &[(&str, &str)]) -> Running {
        let mut cmd = bin();
        cmd.arg("serve")
            .current_dir(dir)
            .env("MOLTFLOW_BIND", format!("127.0.0.1:{port}"))
            .env("MOLTFLOW_ARGON2_MEMORY_KIB", "64")
            .env("MOLTFLOW_ARGON2_ITERATIONS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        wait_ready(port);
        Running { child, output }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits (up to 20 s) until the output holds `text`: the process writes it on its own time.
    pub fn wait_for(&self, text: &str) -> String {
        eventually(Duration::from_secs(20), format!("{text:?} in the output"), || {
            let out = self.output();
            if out.contains(text) { Ok(out) } else { Err(out) }
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn post_json(port: u16, path: &str, body: &str) -> String {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http(port, &request).unwrap_or_default()
}

/// Enough SMTP on loopback for one test: accepts every message and keeps it.
pub fn smtp_sink() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut lines = BufReader::new(stream);
                let _ = out.write_all(b"220 sink\r\n");
                let mut line = String::new();
                while lines.read_line(&mut line).unwrap_or(0) > 0 {
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "DATA" => {
                            let _ = out.write_all(b"354 go on\r\n");
                            let mut message = String::new();
                            let mut l = String::new();
                            while lines.read_line(&mut l).unwrap_or(0) > 0 && l != ".\r\n" {
                                message.push_str(&l);
                                l.clear();
                            }
                            store.lock().unwrap().push(message);
                            b"250 kept\r\n"
                        }
                        "QUIT" => {
                            let _ = out.write_all(b"221 bye\r\n");
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = out.write_all(reply);
                    line.clear();
                }
            });
        }
    });
    (port, received)
}

/// The token of the first `token=` link in a raw message (quoted-printable soft breaks undone).
pub fn token_in(raw: &str) -> Option<String> {
    let text = raw.replace("=\r\n", "").replace("=3D", "=");
    let start = text.find("token=")? + 6;
    Some(text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect())
}
