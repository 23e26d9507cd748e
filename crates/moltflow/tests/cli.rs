//! The `moltflow` binary as an operator runs it: start-up and what it prints, configuration
//! errors and warnings, `--help`, migrations, logs, and a graceful stop on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

#[path = "cli/harness.rs"]
mod harness;

use harness::{Running, exit_of, get, http, post_json, smtp_sink, start, temp_dir, token_in, wait_ready};
use support::{eventually, free_port, moltflow as bin};

#[test]
fn serve_creates_the_sqlite_database_and_stops_cleanly_on_sigterm() {
    let dir = temp_dir();
    let port = free_port();
    let mut child = start(&dir, port);
    wait_ready(port);
    assert!(dir.join("moltflow.db").exists(), "default database file created in the working directory");
    let ready = get(port, "/readyz").unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    // A request in flight when SIGTERM arrives still gets its answer. In flight as a fact, not a
    // head start: its headers ask `Expect: 100-continue` and the body is held back until the
    // server asks for it (the handler is reading it); then SIGTERM; then, once the server has
    // stopped accepting connections (it is draining), the body.
    let body = r#"{"email":"drain@example.com","password":"sunny-tulip-harbor-42","full_name":"Drain"}"#;
    let mut held = TcpStream::connect(("127.0.0.1", port)).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /api/v2/auth/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    held.write_all(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    held.read_exact(&mut interim).unwrap();
    assert_eq!(String::from_utf8_lossy(&interim), "HTTP/1.1 100 Continue\r\n\r\n", "the server asks for the body");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    eventually(Duration::from_secs(15), "the server to stop accepting connections after SIGTERM", || {
        TcpStream::connect(("127.0.0.1", port)).map_or(Ok(()), |_| Err("a connection was accepted"))
    });
    assert!(child.try_wait().unwrap().is_none(), "the server exited with a request in flight");
    held.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    held.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "in-flight request answered: {answer}");
    let exit = exit_of(&mut child, Duration::from_secs(15), "the server to exit after draining");
    assert_eq!(exit.code(), Some(0));
    assert!(get(port, "/healthz").is_none(), "no longer accepting");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_the_variable() {
    for (var, value) in [
        ("MOLTFLOW_BIND", "not-an-address"),
        ("MOLTFLOW_DATABASE_URL", "mysql://localhost/x"),
        ("MOLTFLOW_RATE_LIMIT_SCALE", "fast"),
        ("MOLTFLOW_LOG_FORMAT", "xml"),
    ] {
        let out = bin().arg("serve").env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
}

#[test]
fn unwritable_database_location_is_a_clear_error() {
    let out = bin().arg("migrate").env("MOLTFLOW_DATABASE_URL", "sqlite:///nonexistent-dir/x/y.db").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("moltflow:"), "{stderr}");
}

#[test]
fn numeric_environment_values_are_honoured() {
    // `0` turns rate limits off: 40 bad logins from one IP are all 401, never 429.
    let dir = temp_dir();
    let port = free_port();
    let mut child = bin()
        .arg("serve")
        .current_dir(&dir)
        .env("MOLTFLOW_BIND", format!("127.0.0.1:{port}"))
        .env("MOLTFLOW_LOG", "warn")
        .env("MOLTFLOW_RATE_LIMIT_SCALE", "0")
        .env("MOLTFLOW_ARGON2_MEMORY_KIB", "64")
        .env("MOLTFLOW_ARGON2_ITERATIONS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port);
    let body = r#"{"email":"nobody@example.com","password":"wrong-password-1"}"#;
    let request = format!(
        "POST /api/v2/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        body
    );
    for _ in 0..40 {
        let answer = http(port, &request).unwrap_or_default();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    let _ = child.kill();
    let _ = child.wait();
    // And a negative integer is refused, naming the variable.
    let out = bin().arg("serve").env("MOLTFLOW_RATE_LIMIT_SCALE", "-1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MOLTFLOW_RATE_LIMIT_SCALE"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `serve` in `dir` with `envs` until it is ready; then stops it.
fn serves(dir: &PathBuf, port: u16, envs: &[(&str, &str)]) {
    let mut cmd = bin();
    cmd.arg("serve").current_dir(dir).env("MOLTFLOW_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    wait_ready(port);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_local_billing_provider_is_refused_on_a_reachable_address_unless_chosen() {
    // The local provider's pay page grants plans for free: a deployment that forgot Stripe
    // must not start on an address others can reach.
    let dir = temp_dir();
    let port = free_port();
    for bind in [format!("0.0.0.0:{port}"), format!("[::]:{port}"), "192.168.1.10:8080".into(), "10.0.0.7:80".into()] {
        let mut child = bin()
            .arg("serve")
            .current_dir(&dir)
            .env("MOLTFLOW_BIND", &bind)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status =
            exit_of(&mut child, Duration::from_secs(10), &format!("serve on {bind} to refuse the local provider"));
        assert!(!status.success(), "{bind}");
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("MOLTFLOW_BILLING_PROVIDER") && stderr.contains(&bind), "{stderr}");
        assert!(!dir.join("moltflow.db").exists(), "refused before touching the database");
    }
    // Loopback needs no choice (the default bind: see the test above); a reachable address needs
    // the variable set explicitly…
    let port = free_port();
    serves(&dir, port, &[("MOLTFLOW_BIND", &format!("0.0.0.0:{port}")), ("MOLTFLOW_BILLING_PROVIDER", "local")]);
    // …or the key in moltflow.toml.
    std::fs::write(dir.join("moltflow.toml"), "billing_provider = \"local\"\n").unwrap();
    let port = free_port();
    serves(&dir, port, &[("MOLTFLOW_BIND", &format!("0.0.0.0:{port}"))]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn start_up_says_where_to_click_what_it_uses_and_what_to_watch_without_escape_codes() {
    let dir = temp_dir();
    let port = free_port();
    let server = Running::start(&dir, port, &[]);
    let out = server.wait_for("grants paid plans for free");
    let dir_shown = std::path::absolute(&dir).unwrap().display().to_string();
    for expected in [
        format!("http://127.0.0.1:{port}/ "),
        format!("http://127.0.0.1:{port}/api/v2"),
        format!("SQLite file {dir_shown}/moltflow.db"),
        format!(".eml files in {dir_shown}/mail"),
        "billing   local".to_owned(),
        "kept per node (MOLTFLOW_REDIS_URL is unset)".to_owned(),
        "link (with its token) is logged".to_owned(),
    ] {
        assert!(out.contains(&expected), "{expected:?} missing from:\n{out}");
    }
    assert!(!out.contains('\u{1b}'), "a redirected log holds no ANSI escape codes:\n{out:?}");

    // The URL it prints answers: the dashboard's sign-in page, pointing to the API docs and OpenAPI.
    let page = get(port, "/").unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/html"), "{page}");
    assert!(lower.contains("content-security-policy: default-src 'self'"), "{page}");
    assert!(page.contains("href=\"/openapi.json\"") && page.contains("href=\"/docs\""), "{page}");
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "no external assets: {page}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn json_logs_stay_machine_readable_with_readable_latencies() {
    let dir = temp_dir();
    let port = free_port();
    let server = Running::start(&dir, port, &[("MOLTFLOW_LOG_FORMAT", "json")]);
    get(port, "/healthz").unwrap();
    let out = server.wait_for("\"route\":\"/healthz\"");
    let mut listening = None;
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if event["message"] == "moltflow listening" {
            listening = Some(event.clone());
        }
        if let Some(latency) = line.split("\"latency_ms\":").nth(1) {
            let number: String = latency.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let decimals = number.split('.').nth(1).map_or(0, str::len);
            assert!(decimals <= 3, "latency in whole microseconds at most: {number}");
        }
    }
    let listening = listening.unwrap_or_else(|| panic!("no start-up event in:\n{out}"));
    assert_eq!(listening["url"], format!("http://127.0.0.1:{port}/"));
    assert!(listening["database"].as_str().unwrap().starts_with("SQLite file "), "{listening}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_environment_variables_are_named_with_a_suggestion() {
    let dir = temp_dir();
    let out = bin()
        .arg("migrate")
        .current_dir(&dir)
        .env("MOLTFLOW_BINDD", "127.0.0.1:9")
        .env("MOLTFLOW_TEST_DATABASE_URL", "postgres://ignored")
        .env("MOLTFLOW_CI_POSTGRES", "postgres://ignored")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("unknown environment variable MOLTFLOW_BINDD is ignored (did you mean MOLTFLOW_BIND?)"),
        "{text}"
    );
    assert!(
        !text.contains("MOLTFLOW_TEST_") && !text.contains("MOLTFLOW_CI_"),
        "test and CI variables are not ours: {text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_config_file_refuses_unknown_keys_and_names_itself_for_bad_values() {
    let dir = temp_dir();
    std::fs::write(dir.join("moltflow.toml"), "bindd = \"127.0.0.1:9\"\n").unwrap();
    let out = bin().arg("migrate").current_dir(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "moltflow: invalid configuration: moltflow.toml: unknown key `bindd` (did you mean bind?)"
    );
    assert!(!dir.join("moltflow.db").exists(), "nothing created");

    std::fs::write(dir.join("moltflow.toml"), "bind = \"nowhere\"\n").unwrap();
    let out = bin().arg("migrate").current_dir(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("moltflow.toml: bind: invalid socket address \"nowhere\""), "{stderr}");
    assert!(!stderr.contains("MOLTFLOW_BIND"), "the value came from the file: {stderr}");

    // The environment still wins over the file, and then its variable is the one named.
    let out = bin().arg("migrate").current_dir(&dir).env("MOLTFLOW_BIND", "nowhere:x").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("MOLTFLOW_BIND: invalid socket address \"nowhere:x\""));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serve_help_lists_the_settings_with_their_defaults() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (var, default) in [
        ("MOLTFLOW_BIND", "127.0.0.1:8080"),
        ("MOLTFLOW_DATABASE_URL", "sqlite://moltflow.db"),
        ("MOLTFLOW_SMTP_URL", "unset"),
        ("MOLTFLOW_MAIL_DIR", "./mail"),
        ("MOLTFLOW_BILLING_PROVIDER", "local"),
        ("MOLTFLOW_LOG_FORMAT", "pretty"),
    ] {
        let line = help.lines().find(|l| l.trim_start().starts_with(var)).unwrap_or_else(|| panic!("{var}: {help}"));
        assert!(line.contains(default), "{line}");
    }
}

#[test]
fn migrate_says_how_many_migrations_it_applied() {
    let dir = temp_dir();
    let first = bin().arg("migrate").current_dir(&dir).output().unwrap();
    let first = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(first.contains(" migrations applied") && !first.contains(": 0 "), "{first}");
    let again = bin().arg("migrate").current_dir(&dir).output().unwrap();
    let again = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.contains("already up to date, no migration applied"), "{again}");
    // With JSON logs the answer is a JSON line too.
    let json = bin().arg("migrate").current_dir(&dir).env("MOLTFLOW_LOG_FORMAT", "json").output().unwrap();
    let line: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(line["applied"], 0, "{line}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_port_already_taken_leaves_no_database_behind() {
    let dir = temp_dir();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = bin().arg("serve").current_dir(&dir).env("MOLTFLOW_BIND", format!("127.0.0.1:{port}")).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MOLTFLOW_BIND: cannot listen on"), "{stderr}");
    assert!(!dir.join("moltflow.db").exists(), "no empty database file left behind");
    drop(taken);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mail_links_are_logged_only_without_smtp() {
    let register = r#"{"email":"ana@example.com","password":"sunny-tulip-harbor-42","full_name":"Ana"}"#;

    // No SMTP (development): the link is logged, as README says, so it can be followed.
    let dir = temp_dir();
    let port = free_port();
    let server = Running::start(&dir, port, &[]);
    assert!(post_json(port, "/api/v2/auth/register", register).starts_with("HTTP/1.1 201"));
    let out = server.wait_for("mail written to file");
    assert!(out.contains("/verify-email?token="), "{out}");
    drop(server);

    // With SMTP: never a token, not even at the most verbose level.
    let dir2 = temp_dir();
    let port = free_port();
    let (smtp_port, received) = smtp_sink();
    let smtp = format!("smtp://127.0.0.1:{smtp_port}");
    let server = Running::start(&dir2, port, &[("MOLTFLOW_SMTP_URL", smtp.as_str()), ("MOLTFLOW_LOG", "trace")]);
    assert!(post_json(port, "/api/v2/auth/register", register).starts_with("HTTP/1.1 201"));
    let out = server.wait_for("mail sent");
    let raw = received.lock().unwrap().first().cloned().expect("the mail reached the SMTP server");
    let token = token_in(&raw).unwrap_or_else(|| panic!("no link in {raw}"));
    assert!(token.len() > 20, "{token}");
    assert!(!out.contains(&token), "the token is in the log");
    assert!(!out.contains("token="), "no link is logged with SMTP:\n{out}");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir2);
}
