//! `moltflow` as a client of a real server on loopback: every subcommand, table and `--json`
//! output, the stored login, and the exit code of each class of failure.

use std::io::Write;
use std::process::Stdio;

use serde_json::{Value, json};
use support::{free_port, moltflow};

mod support;

#[path = "client/harness.rs"]
mod harness;

use harness::{PASSWORD, Run, Server};

#[test]
fn keys_are_managed_from_the_terminal_and_the_secret_is_printed_once() {
    let server = Server::start();
    let pair = server.owner("ana@example.com");
    let key = server.key(pair["access_token"].as_str().unwrap(), &["*"]);
    let k = Some(key.as_str());

    let created = server.cli(k, &["keys", "create", "--name", "reporting", "--preset", "read-only"]);
    let out = created.ok().stdout();
    let secret = out.lines().find_map(|l| l.strip_prefix("secret  ")).expect("secret line").to_owned();
    assert!(secret.starts_with("mf_") && secret.len() > 40, "{out}");
    assert!(out.contains("shown only once"), "{out}");
    let id = out.lines().find_map(|l| l.strip_prefix("id")).unwrap().trim().to_owned();

    // The listing shows the key's prefix and state, never its secret.
    let list = server.cli(k, &["keys", "list"]);
    let table = list.ok().stdout();
    assert!(table.starts_with("ID") && table.contains("PREFIX") && table.contains(&secret[..7]), "{table}");
    assert!(!table.contains(&secret), "{table}");
    let listed = server.cli(k, &["keys", "list", "--json"]).ok().json();
    assert!(listed.as_array().unwrap().iter().all(|k| k.get("raw_key").is_none()));

    // The new key works with the CLI, and only within its scopes (a read-only key: exit 4).
    let narrow = Some(secret.as_str());
    assert!(server.cli(narrow, &["whoami"]).ok().stdout().contains("usage:read"));
    server.cli(narrow, &["settings", "set", "--require-approval", "true"]).fails(4, "insufficient_scope");

    let shown = server.cli(k, &["keys", "show", &id, "--json"]).ok().json();
    assert_eq!(shown["name"], "reporting");
    let rotated = server.cli(k, &["keys", "rotate", &id, "--grace-minutes", "5", "--json"]).ok().json();
    assert!(rotated["raw_key"].as_str().unwrap().starts_with("mf_"));
    assert_ne!(rotated["raw_key"].as_str(), Some(secret.as_str()));
    assert!(server.cli(k, &["keys", "revoke", &id, "--yes"]).ok().stdout().contains("Revoked"));
    assert_eq!(server.cli(k, &["keys", "show", &id, "--json"]).ok().json()["is_active"], false);
    server.cli(k, &["keys", "show", "0193a6c0-0000-7000-8000-000000000000"]).fails(5, "not_found");

    let scopes = server.cli(k, &["keys", "scopes"]).ok().stdout();
    assert!(scopes.contains("usage:read") && scopes.contains("read-only"), "{scopes}");
    server.cli(k, &["keys", "create", "--name", "x", "--scope", "nope:read"]).fails(2, "validation_error");
    server.cli(k, &["keys", "create", "--name", "x"]).fails(2, "--scope");
}

#[test]
fn usage_is_reported_read_and_charted() {
    let server = Server::start();
    let pair = server.owner("bea@example.com");
    let key = server.key(pair["access_token"].as_str().unwrap(), &["*"]);
    let k = Some(key.as_str());

    let consumed =
        server.cli(k, &["usage", "consume", "--metric", "messages", "--quantity", "3", "--json"]).ok().json();
    assert_eq!((consumed["allowed"].clone(), consumed["used"].clone()), (json!(true), json!(3)));
    let events = server.cli(k, &["usage", "events", "--metric", "messages", "--quantity", "2", "--session", "s1"]);
    assert!(events.ok().stdout().contains("accepted 1"), "{}", events.stdout());

    let current = server.cli(k, &["usage", "current"]).ok().stdout();
    assert!(current.contains("plan free"), "{current}");
    let messages = current.lines().find(|l| l.starts_with("messages")).unwrap();
    assert!(messages.contains("5 / 50"), "{current}");
    let ai = current.lines().find(|l| l.starts_with("ai_replies")).unwrap();
    assert!(ai.contains("not included"), "{current}");

    let daily = server.cli(k, &["usage", "daily"]).ok().stdout();
    assert!(daily.contains('█') && daily.contains("total 5 messages"), "{daily}");
    let by_session = server.cli(k, &["usage", "daily", "--session", "s1", "--json"]).ok().json();
    let total: u64 = by_session["days"].as_array().unwrap().iter().map(|d| d["messages"].as_u64().unwrap()).sum();
    assert_eq!(total, 2);
    let history = server.cli(k, &["usage", "history", "--months", "2"]).ok().stdout();
    assert!(history.starts_with("MONTH") && history.lines().count() == 3, "{history}");

    // Over the free plan's 50 messages: exit 7 with the API's code; a bad metric: exit 2.
    server.cli(k, &["usage", "consume", "--metric", "messages", "--quantity", "100"]).fails(7, "quota_exceeded");
    server.cli(k, &["usage", "consume", "--metric", "nope"]).fails(2, "validation_error");
}

#[test]
fn billing_settings_members_and_audit_from_the_terminal() {
    let server = Server::start();
    let pair = server.owner("carla@example.com");
    let key = server.key(pair["access_token"].as_str().unwrap(), &["*"]);
    let k = Some(key.as_str());

    // Plans are public: no credential needed.
    let plans = server.cli(None, &["billing", "plans"]).ok().stdout();
    assert!(plans.contains("business") && plans.contains("$49.90"), "{plans}");
    let sub = server.cli(k, &["billing", "subscription", "--json"]).ok().json();
    assert_eq!(sub["plan_id"], "free");
    let checkout = server.cli(k, &["billing", "checkout", "--plan", "pro", "--cycle", "yearly"]).ok().stdout();
    assert!(checkout.contains(&format!("http://127.0.0.1:{}/", server.port)), "{checkout}");
    server.cli(k, &["billing", "checkout", "--plan", "free"]).fails(6, "");
    server.cli(k, &["billing", "cancel", "--yes"]).fails(6, "no_subscription");
    server.cli(k, &["billing", "checkout", "--plan", "pro", "--cycle", "weekly"]).fails(2, "weekly");

    let set =
        server.cli(k, &["settings", "set", "--allowed-numbers", "+5511999999999", "--ai-consent", "true", "--json"]);
    assert_eq!(set.ok().json()["allowed_numbers"], json!(["+5511999999999"]));
    let get = server.cli(k, &["settings", "get"]).ok().stdout();
    assert!(get.contains("+5511999999999") && get.contains("AI consent"), "{get}");
    server.cli(k, &["settings", "set", "--allowed-numbers", "12345"]).fails(2, "allowed_numbers");

    let invited = server.cli(k, &["members", "invite", "dan@example.com", "--role", "admin", "--json"]).ok().json();
    assert_eq!(invited["status"], "pending");
    let token = server.mail_token("dan@example.com", "invitation");
    let (status, dan) = server.call(
        "POST",
        "/api/v2/auth/accept-invitation",
        None,
        Some(json!({"token": token, "full_name": "Dan", "password": "quiet-river-lantern-77"})),
    );
    assert_eq!(status, 201, "{dan}");
    let dan_id = dan["user"]["id"].as_str().unwrap();
    let members = server.cli(k, &["members", "list"]).ok().stdout();
    assert!(members.contains("dan@example.com") && members.contains("admin"), "{members}");
    assert!(server.cli(k, &["members", "role", dan_id, "member"]).ok().stdout().contains("is now member"));
    assert!(server.cli(k, &["members", "invitations"]).ok().stdout().contains("accepted"));
    server.cli(k, &["members", "remove", dan_id, "--yes"]).ok();
    server.cli(k, &["members", "remove", dan_id, "--yes"]).fails(5, "not_found");

    let audit = server.cli(k, &["audit", "--limit", "50"]).ok().stdout();
    assert!(audit.starts_with("AT") && audit.contains("member.removed"), "{audit}");
    let page = server.cli(k, &["audit", "--action", "settings.updated", "--json"]).ok().json();
    assert!(page["items"].as_array().unwrap().iter().all(|e| e["action"] == "settings.updated"));
}

#[test]
fn login_keeps_a_private_refresh_token_and_logout_ends_the_session() {
    let server = Server::start();
    server.owner("eva@example.com");
    server.cli(None, &["whoami"]).fails(3, "not signed in");

    let login = server.cli_with_stdin(None, &["login", "--email", "eva@example.com", "--password-stdin"], PASSWORD);
    assert!(login.ok().stdout().contains("Signed in"), "{}", login.stdout());
    let file = server.dir.join("config/moltflow/login.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let me = server.cli(None, &["whoami", "--json"]).ok().json();
    assert_eq!((me["email"].clone(), me["auth"]["method"].clone()), (json!("eva@example.com"), json!("jwt")));

    // Another server address does not get this login's token.
    let mut elsewhere = moltflow();
    let out = elsewhere
        .args(["whoami", "--api-url", &format!("http://localhost:{}/api/v2", server.port)])
        .env("XDG_CONFIG_HOME", server.dir.join("config"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    // …and a logout there neither ends nor forgets it.
    let mut elsewhere = moltflow();
    let out = elsewhere
        .args(["logout", "--api-url", &format!("http://localhost:{}/api/v2", server.port)])
        .env("XDG_CONFIG_HOME", server.dir.join("config"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Not signed in"));
    assert!(file.exists(), "the login of the other address is kept");

    assert!(server.cli(None, &["logout"]).ok().stdout().contains("Signed out"));
    assert!(!file.exists());
    let refresh = json!({"refresh_token": stored["refresh_token"]});
    assert_eq!(server.call("POST", "/api/v2/auth/refresh", None, Some(refresh)).0, 401, "the session ended");
    server.cli(None, &["whoami"]).fails(3, "not signed in");

    let wrong =
        server.cli_with_stdin(None, &["login", "--email", "eva@example.com", "--password-stdin"], "nope-nope-1");
    wrong.fails(3, "invalid_credentials");
    assert!(!file.exists());
}

#[test]
fn login_by_magic_link_and_usage_events_from_a_file() {
    let server = Server::start();
    server.owner("gil@example.com");
    // The owner's own sign-in link, spent already.
    let owners = server.mail_token("gil@example.com", "magic_link");
    // The link is mailed; the person pastes it at the prompt (here: on standard input).
    let mut child = moltflow()
        .args(["login", "--email", "gil@example.com", "--magic-link"])
        .env("MOLTFLOW_API_URL", server.api_url())
        .env("XDG_CONFIG_HOME", server.dir.join("config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let token = server.mail_token_other_than("gil@example.com", "magic_link", Some(&owners));
    let link = format!("http://127.0.0.1:{}/magic-link?token={token}\n", server.port);
    child.stdin.take().unwrap().write_all(link.as_bytes()).unwrap();
    let login = Run(child.wait_with_output().unwrap());
    assert!(login.ok().stdout().contains("gil@example.com"), "{}", login.stdout());

    // Events from standard input, as a bare list; the stored login authenticates.
    let events =
        r#"[{"id": "e1", "metric": "messages", "quantity": 4}, {"id": "e2", "metric": "messages", "quantity": 1}]"#;
    let sent = server.cli_with_stdin(None, &["usage", "events", "--file", "-", "--json"], events).ok().json();
    assert_eq!((sent["accepted"].clone(), sent["duplicates"].clone()), (json!(2), json!(0)));
    let again = server.cli_with_stdin(None, &["usage", "events", "--file", "-", "--json"], events).ok().json();
    assert_eq!(again["duplicates"], 2, "a replay is counted once");
    let current = server.cli(None, &["usage", "current", "--json"]).ok().json();
    assert_eq!(current["metrics"]["messages"]["used"], 5);
    server.cli_with_stdin(None, &["usage", "events", "--file", "-"], "not json").fails(2, "not JSON");
}

#[test]
fn failures_map_to_distinct_exit_codes() {
    let server = Server::start();
    let bad_key = format!("mf_{}", "a".repeat(44));
    server.cli(Some(&bad_key), &["whoami"]).fails(3, "invalid_api_key");
    server.cli(Some(&bad_key), &["whoami", "--json"]).fails(3, "\"code\":\"invalid_api_key\"");

    let closed = free_port();
    let out = moltflow()
        .args(["billing", "plans", "--api-url", &format!("http://127.0.0.1:{closed}/api/v2")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));

    let usage = moltflow().args(["keys", "frobnicate"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = moltflow().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("moltflow") && script.contains("rotate"), "{shell}");
    }
}
