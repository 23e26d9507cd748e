//! The CLI and `moltflow mcp` against a server that redirects: a redirect to another origin
//! (another host name or another port) is refused before anything reaches it, so neither the
//! API key nor a login's password goes along; a redirect on the same origin is still followed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};

use support::moltflow;

mod support;

const KEY: &str = "mf_redirect_test_key_that_must_stay_here_0000000000";
const PASSWORD: &str = "sunny-tulip-harbor-42";

/// A tiny HTTP/1.1 server on loopback: each request (head and body, as received) is kept, then
/// answered by `answer(request)` and the connection closed.
struct Tiny {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Tiny {
    fn start(answer: impl Fn(&str) -> String + Send + 'static) -> Tiny {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let Some(request) = read_request(&stream) else { continue };
                // Kept before answering: once the client has its answer, the request is on record.
                kept.lock().unwrap().push(request.clone());
                let _ = (&stream).write_all(answer(&request).as_bytes());
            }
        });
        Tiny { port, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(head + &String::from_utf8_lossy(&body))
}

fn path_of(request: &str) -> &str {
    request.split(' ').nth(1).unwrap_or("")
}

fn answer(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A server that answers every request with a 307 to the same path at `target`.
fn redirecting_to(target: String) -> Tiny {
    Tiny::start(move |request| {
        answer("307 Temporary Redirect", &format!("Location: {target}{}\r\n", path_of(request)), "")
    })
}

/// The server another origin would be: it answers 200 to anything, and keeps what it was sent.
fn elsewhere() -> Tiny {
    Tiny::start(|_| answer("200 OK", "", r#"{"email": "mallory@example.com"}"#))
}

/// `moltflow` against `api` with the key (when given) and a private configuration folder.
fn run(api: u16, key: Option<&str>, args: &[&str], stdin: &str) -> Output {
    let config = std::env::temp_dir().join(format!("moltflow-redirects-{}-{api}", std::process::id()));
    let mut cmd = moltflow();
    cmd.args(args)
        .env("MOLTFLOW_API_URL", format!("http://127.0.0.1:{api}/api/v2"))
        .env("XDG_CONFIG_HOME", &config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(key) = key {
        cmd.env("MOLTFLOW_API_KEY", key);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&config);
    out
}

#[track_caller]
fn assert_refused(out: &Output, from: u16, to: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "stderr: {stderr}");
    let said = format!("the server at http://127.0.0.1:{from} redirected to another origin, {to}; not followed");
    assert!(stderr.contains(&said), "stderr says why: {stderr}");
}

/// Both kinds of other origin: another host name for the same address, and another port.
fn other_origins(port: u16) -> [String; 2] {
    [format!("http://localhost:{port}"), format!("http://127.0.0.1:{port}")]
}

#[test]
fn a_key_is_never_sent_to_another_origin_on_a_redirect() {
    let evil = elsewhere();
    for target in other_origins(evil.port) {
        let api = redirecting_to(target.clone());
        let out = run(api.port, Some(KEY), &["whoami", "--json"], "");
        assert_refused(&out, api.port, &target);
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        let asked = api.requests();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert!(asked[0].to_ascii_lowercase().contains(&format!("x-api-key: {}", KEY.to_ascii_lowercase())));
    }
    assert_eq!(evil.requests(), Vec::<String>::new(), "the other origin received nothing");
}

#[test]
fn a_password_is_never_sent_to_another_origin_on_a_307() {
    let evil = elsewhere();
    for target in other_origins(evil.port) {
        let api = redirecting_to(target.clone());
        let out = run(api.port, None, &["login", "--email", "ana@example.com", "--password-stdin"], PASSWORD);
        assert_refused(&out, api.port, &target);
        assert!(api.requests()[0].contains(PASSWORD), "the login went to the API it was meant for");
    }
    assert_eq!(evil.requests(), Vec::<String>::new(), "the other origin received nothing");
}

#[test]
fn a_redirect_on_the_same_origin_is_still_followed() {
    let api = Tiny::start(|request| match path_of(request) {
        "/api/v2/auth/me" => answer("308 Permanent Redirect", "Location: /api/v2/moved/auth/me\r\n", ""),
        "/api/v2/moved/auth/me" => answer("200 OK", "", r#"{"email": "ana@example.com"}"#),
        _ => answer("404 Not Found", "", r#"{"detail": "Not found", "code": "not_found"}"#),
    });
    let out = run(api.port, Some(KEY), &["whoami", "--json"], "");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ana@example.com"));
    let asked = api.requests();
    assert_eq!(asked.iter().map(|r| path_of(r)).collect::<Vec<_>>(), ["/api/v2/auth/me", "/api/v2/moved/auth/me"]);
    assert!(asked[1].contains(KEY), "the same origin keeps the key");
}

#[test]
fn moltflow_mcp_reports_a_redirect_to_another_origin_at_start_and_in_a_tool_call() {
    let evil = elsewhere();
    let target = format!("http://localhost:{}", evil.port);

    // At start: the key's scopes cannot be read, and the process says why.
    let api = redirecting_to(target.clone());
    let out = run(api.port, Some(KEY), &["mcp"], "");
    assert_refused(&out, api.port, &target);

    // In a tool call: the agent gets an error that says why.
    let to = target.clone();
    let api = Tiny::start(move |request| match path_of(request) {
        "/api/v2/auth/me" => answer("200 OK", "", r#"{"auth": {"scopes": ["usage:read"]}}"#),
        path => answer("307 Temporary Redirect", &format!("Location: {to}{path}\r\n"), ""),
    });
    let mut child = moltflow()
        .arg("mcp")
        .env("MOLTFLOW_API_URL", format!("http://127.0.0.1:{}/api/v2", api.port))
        .env("MOLTFLOW_API_KEY", KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let messages = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"test","version":"0"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_usage_current","arguments":{}}}"#,
    ];
    for message in messages {
        writeln!(stdin, "{message}").unwrap();
    }
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let reply = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "moltflow mcp ended before answering the call");
        let message: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if message["id"] == 2 {
            break message;
        }
    };
    drop(stdin);
    child.wait().unwrap();
    let said = reply.to_string();
    assert!(said.contains("redirected to another origin") && said.contains("not followed"), "{said}");
    assert_eq!(
        api.requests().iter().map(|r| path_of(r)).collect::<Vec<_>>(),
        ["/api/v2/auth/me", "/api/v2/usage/current"]
    );
    assert_eq!(evil.requests(), Vec::<String>::new(), "the other origin received nothing");
}
