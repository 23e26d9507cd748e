//! The server the client tests drive (`moltflow serve` on SQLite in a temp dir, killed on drop),
//! raw requests to it, the tokens in its mail files, and a CLI run's output.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{eventually, free_port, moltflow};

pub const PASSWORD: &str = "sunny-tulip-harbor-42";

/// A `moltflow serve` in a temporary folder (SQLite, mail to files), killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    pub fn start() -> Server {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("moltflow-client-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("config")).unwrap();
        let port = free_port();
        let child = moltflow()
            .arg("serve")
            .current_dir(&dir)
            .env("MOLTFLOW_BIND", format!("127.0.0.1:{port}"))
            .env("MOLTFLOW_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("MOLTFLOW_LOG", "warn")
            .env("MOLTFLOW_ARGON2_MEMORY_KIB", "64")
            .env("MOLTFLOW_ARGON2_ITERATIONS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, port, dir };
        // Polls a process that is starting up: nothing to wait on but the socket.
        eventually(Duration::from_secs(20), "the server to answer /healthz", || {
            let (status, body) = server.call("GET", "/healthz", None, None);
            if status == 200 { Ok(()) } else { Err((status, body)) }
        });
        server
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v2", self.port)
    }

    /// One HTTP request with `Connection: close`: the status and the JSON body.
    pub fn call(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return (0, Value::Null) };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(request.as_bytes()).is_err() {
            return (0, Value::Null);
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let json = answer.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
        (status, json)
    }

    /// Registers an owner, verifies the email from the mail file, signs in again by magic link and
    /// sets the password (the first proof of the mailbox took back the registration's session and
    /// password, API.md §3), and returns the token pair of that sign-in.
    pub fn owner(&self, email: &str) -> Value {
        let (status, pair) = self.call(
            "POST",
            "/api/v2/auth/register",
            None,
            Some(json!({"email": email, "password": PASSWORD, "full_name": "Ana Lima", "tenant_name": "Lima"})),
        );
        assert_eq!(status, 201, "{pair}");
        let token = self.mail_token(email, "verify_email");
        assert_eq!(self.call("POST", "/api/v2/auth/verify-email", None, Some(json!({"token": token}))).0, 200);
        assert_eq!(self.call("POST", "/api/v2/auth/magic-link/request", None, Some(json!({"email": email}))).0, 202);
        let token = self.mail_token(email, "magic_link");
        let (status, pair) = self.call("POST", "/api/v2/auth/magic-link/verify", None, Some(json!({"token": token})));
        assert_eq!(status, 200, "{pair}");
        let access = pair["access_token"].as_str().unwrap();
        let set = self.call("POST", "/api/v2/auth/set-password", Some(access), Some(json!({"password": PASSWORD})));
        assert_eq!(set.0, 200, "{}", set.1);
        pair
    }

    pub fn key(&self, access: &str, scopes: &[&str]) -> String {
        let (status, key) =
            self.call("POST", "/api/v2/api-keys", Some(access), Some(json!({"name": "cli test", "scopes": scopes})));
        assert_eq!(status, 201, "{key}");
        key["raw_key"].as_str().unwrap().to_owned()
    }

    /// The token in the newest mail of `kind` to `to`, waiting for the outbox worker to write it.
    pub fn mail_token(&self, to: &str, kind: &str) -> String {
        self.mail_token_other_than(to, kind, None)
    }

    /// As [`Server::mail_token`], waiting for a mail newer than the one that carried `seen`.
    pub fn mail_token_other_than(&self, to: &str, kind: &str, seen: Option<&str>) -> String {
        // The outbox worker delivers in the background; poll its output folder.
        eventually(Duration::from_secs(15), format!("a {kind} mail to {to}"), || {
            let newest = find_mail_token(&self.dir.join("mail"), to, kind);
            newest.clone().filter(|t| Some(t.as_str()) != seen).ok_or(newest)
        })
    }

    pub fn cli(&self, key: Option<&str>, args: &[&str]) -> Run {
        self.cli_with_stdin(key, args, "")
    }

    pub fn cli_with_stdin(&self, key: Option<&str>, args: &[&str], stdin: &str) -> Run {
        let mut cmd = moltflow();
        cmd.args(args)
            .env("MOLTFLOW_API_URL", self.api_url())
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(key) = key {
            cmd.env("MOLTFLOW_API_KEY", key);
        }
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        Run(child.wait_with_output().unwrap())
    }
}

fn find_mail_token(dir: &Path, to: &str, kind: &str) -> Option<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(&format!("-{kind}.eml")))
        .collect();
    files.sort();
    files.iter().rev().find_map(|p| {
        // Quoted-printable: join soft line breaks, then decode the one escape a link holds.
        let text = std::fs::read_to_string(p).ok()?.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
        if !text.contains(to) {
            return None;
        }
        let start = text.find("token=")? + 6;
        Some(text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect())
    })
}

pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout()))
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.0.status.code(), Some(0), "stdout: {}\nstderr: {}", self.stdout(), self.stderr());
        self
    }

    #[track_caller]
    pub fn fails(&self, code: i32, api_code: &str) -> &Self {
        assert_eq!(self.0.status.code(), Some(code), "stdout: {}\nstderr: {}", self.stdout(), self.stderr());
        assert!(self.stderr().contains(api_code), "stderr names {api_code}: {}", self.stderr());
        self
    }
}
