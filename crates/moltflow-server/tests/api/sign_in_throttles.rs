//! The sign-in throttles of API.md §3 under attack: a burst of wrong passwords against one
//! account, key guessing from one network (IPv6 counted by its /64), and a failed login that must
//! not wait for (or reveal itself through) its audit row.

use std::time::Duration;

use futures::future::join_all;
use moltflow_core::api_key::new_raw_key;
use moltflow_store::Backend;
use reqwest::Method;
use serde_json::json;

use crate::auth_tokens::{claims_of, sign};
use crate::common::{NEEDS_POSTGRES, PASSWORD, Resp, TEST_SEED, TestApp, skipped_part, token};

/// Argon2 at the production cost: each check takes long enough that a burst is all in flight
/// before the first one finishes, as it is against a real server.
const PRODUCTION_HASH: [(&str, &str); 2] = [("argon2_memory_kib", "19456"), ("argon2_iterations", "2")];

fn statuses(answers: &[Resp]) -> (usize, usize) {
    (
        answers.iter().filter(|r| r.status == 401 || r.status == 400).count(),
        answers.iter().filter(|r| r.status == 429).count(),
    )
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_gets_five_checks_and_the_account_stays_locked_for_the_window() {
    let app = TestApp::spawn_with(&PRODUCTION_HASH).await;
    app.register("ana@example.com").await;
    let checks_before = app.state.hasher.checks();
    let answers = join_all((0..12).map(|_| app.login("ana@example.com", "wrong-password-123"))).await;
    assert_eq!(statuses(&answers), (5, 7), "five wrong passwords checked, seven refused unchecked");
    assert!(answers.iter().filter(|r| r.status == 429).all(|r| r.code() == "login_locked"));
    assert_eq!(app.state.hasher.checks() - checks_before, 5, "passwords that reached the hasher");

    // The right password is refused too, unchecked, until the window has passed.
    let locked = app.login("ana@example.com", PASSWORD).await;
    locked.assert(429, "login_locked");
    let retry: u64 = locked.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((880..=900).contains(&retry), "retry-after {retry}");
    app.state.clock.advance(Duration::from_secs(14 * 60));
    app.login("ana@example.com", PASSWORD).await.assert(429, "login_locked");
    assert_eq!(app.state.hasher.checks() - checks_before, 5);
    app.state.clock.advance(Duration::from_secs(60));
    let signed_in = app.login("ana@example.com", PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    // A success cleared the count: five more attempts are checked.
    for _ in 0..5 {
        app.login("ana@example.com", "wrong-password-123").await.assert(401, "invalid_credentials");
    }
    app.login("ana@example.com", "wrong-password-123").await.assert(429, "login_locked");
}

#[tokio::test]
async fn current_password_checks_reserve_from_the_same_lockout() {
    let app = TestApp::spawn_with(&PRODUCTION_HASH).await;
    let pair = app.register("ana@example.com").await;
    let access = token(&pair, "access_token");
    let checks_before = app.state.hasher.checks();
    let body = json!({"password": "a-new-fine-phrase-77", "current_password": "wrong-password-1"});
    let answers = join_all((0..8).map(|_| app.post("/auth/set-password", body.clone(), Some(&access)))).await;
    assert_eq!(statuses(&answers), (5, 3));
    assert!(answers.iter().filter(|r| r.status == 400).all(|r| r.code() == "invalid_current_password"));
    assert_eq!(app.state.hasher.checks() - checks_before, 5);
    app.login("ana@example.com", PASSWORD).await.assert(429, "login_locked");
    app.put_json(Method::DELETE, "/users/me", json!({"current_password": PASSWORD}), Some(&access))
        .await
        .assert(429, "login_locked");
}

async fn me_with_key(app: &TestApp, key: &str) -> Resp {
    app.with_key(Method::GET, "/auth/me", key, None).await
}

#[tokio::test]
async fn guessing_keys_is_refused_without_lookups_past_a_hundred_failures_while_valid_credentials_work() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let access = token(&owner, "access_token");
    let key = token(&app.create_key(&access, &["account:read"]).await, "raw_key");
    assert_eq!(me_with_key(&app, &key).await.status, 200);

    let lookups_before = app.state.auth_cache.key_lookups();
    for _ in 0..100 {
        me_with_key(&app, &new_raw_key()).await.assert(401, "invalid_api_key");
    }
    assert_eq!(app.state.auth_cache.key_lookups() - lookups_before, 100);
    for _ in 0..20 {
        let refused = me_with_key(&app, &new_raw_key()).await;
        refused.assert(429, "rate_limited");
        assert!(refused.header("retry-after").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1));
    }
    // Bad tokens and malformed credentials are refused the same way, before any work.
    app.get("/auth/me", Some("not-a-jwt")).await.assert(429, "rate_limited");
    app.with_key(Method::GET, "/auth/me", "mf_short", None).await.assert(429, "rate_limited");
    assert_eq!(app.state.auth_cache.key_lookups() - lookups_before, 100, "no lookup once throttled");

    // Credentials known valid keep working from the same address.
    assert_eq!(me_with_key(&app, &key).await.status, 200);
    assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200);
    let fresh = app.login("owner@example.com", PASSWORD).await;
    assert_eq!(app.get("/auth/me", Some(&token(&fresh.body, "access_token"))).await.status, 200, "issued here");

    // The budget refills over the minute.
    app.state.clock.advance(Duration::from_secs(60));
    me_with_key(&app, &new_raw_key()).await.assert(401, "invalid_api_key");
}

#[tokio::test]
async fn ipv6_clients_are_counted_by_their_64_in_every_per_ip_limit() {
    let app = TestApp::spawn_with(&[("trusted_proxies", "127.0.0.1")]).await;
    let from = |ip: &str, key: &str| {
        app.client.get(app.url("/auth/me")).header("x-api-key", key).header("x-forwarded-for", ip)
    };
    for i in 0..100 {
        let r = app.send(from(&format!("2001:db8:1:2::{i:x}"), &new_raw_key())).await;
        r.assert(401, "invalid_api_key");
    }
    app.send(from("2001:db8:1:2:ffff:ffff:ffff:ffff", &new_raw_key())).await.assert(429, "rate_limited");
    app.send(from("2001:db8:1:3::1", &new_raw_key())).await.assert(401, "invalid_api_key");
    app.send(from("198.51.100.7", &new_raw_key())).await.assert(401, "invalid_api_key");

    let login = |ip: &str, i: usize| {
        app.client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": format!("user{i}@example.com"), "password": "whatever-123"}))
    };
    for i in 0..30 {
        app.send(login(&format!("2001:db8:9:9::{i:x}"), i)).await.assert(401, "invalid_credentials");
    }
    app.send(login("2001:db8:9:9:abcd::1", 99)).await.assert(429, "rate_limited");
    app.send(login("2001:db8:9:a::1", 99)).await.assert(401, "invalid_credentials");
}

#[tokio::test]
async fn rate_limit_scale_zero_turns_the_failed_authentication_throttle_off() {
    let app = TestApp::spawn_with(&[("rate_limit_scale", "0")]).await;
    for _ in 0..150 {
        me_with_key(&app, &new_raw_key()).await.assert(401, "invalid_api_key");
    }
}

#[tokio::test]
async fn a_failed_login_does_the_same_work_for_known_and_unknown_emails_and_never_waits_for_the_audit_log() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com").await;
    // Hold the audit log: on SQLite a write transaction holds the database's write lock; on
    // PostgreSQL an EXCLUSIVE lock blocks inserts into audit_logs (reads of users go on).
    let mut held = app.store.begin().await.expect("begin");
    if app.store.backend() == Backend::Postgres {
        held.execute_raw("LOCK TABLE audit_logs IN EXCLUSIVE MODE").await.expect("lock");
    }
    // A bounded wait, not a timing claim: writing the row inside the request would wait for
    // the lock (10 s busy timeout on SQLite, for ever on PostgreSQL).
    let (known, unknown) = tokio::time::timeout(Duration::from_secs(5), async {
        (app.login("ana@example.com", "wrong-password-1").await, app.login("bob@example.com", "wrong-password-1").await)
    })
    .await
    .expect("a failed login must not wait for its audit row");
    known.assert(401, "invalid_credentials");
    unknown.assert(401, "invalid_credentials");
    assert_eq!(known.body["detail"], unknown.body["detail"]);
    held.commit().await.expect("release");

    app.flush_audit().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'login.failed'").await, 1);
    let user_id = app
        .count(
            "SELECT COUNT(*) FROM audit_logs a JOIN users u ON u.id = a.target \
                             WHERE a.action = 'login.failed' AND u.email = 'ana@example.com'",
        )
        .await;
    assert_eq!(user_id, 1, "the row names the account");
}

#[tokio::test]
async fn a_validly_signed_token_unknown_here_is_not_throttled_as_a_guess_while_forged_ones_are() {
    let app = TestApp::spawn().await;
    let pair = app.register("owner@example.com").await;
    let access = token(&pair, "access_token");
    let kid = app.state.jwt.kid().to_owned();
    // What another node behind the same load balancer issues for this session: signed with the
    // shared key, a string this node has never seen.
    let minted = |seed: [u8; 32], jti: &str| {
        let mut claims = claims_of(&access);
        claims["jti"] = json!(jti);
        sign(seed, &kid, &claims)
    };

    for _ in 0..100 {
        app.get("/auth/me", Some("not-a-jwt")).await.assert(401, "invalid_token");
    }
    app.get("/auth/me", Some("not-a-jwt")).await.assert(429, "rate_limited");
    app.get("/auth/me", Some(&minted([9; 32], "forged"))).await.assert(429, "rate_limited");
    let mut expired = claims_of(&access);
    expired["exp"] = json!(expired["iat"].as_i64().unwrap() - 60);
    app.get("/auth/me", Some(&sign(TEST_SEED, &kid, &expired))).await.assert(429, "rate_limited");

    let from_another_node = app.get("/auth/me", Some(&minted(TEST_SEED, "peer-1"))).await;
    assert_eq!(from_another_node.status, 200, "{}", from_another_node.body);
    assert_eq!(from_another_node.body["email"], "owner@example.com");
    // On PostgreSQL, a token a second node really issued.
    if let Some(peer) = app.spawn_peer().await {
        let issued = peer.login("owner@example.com", PASSWORD).await;
        assert_eq!(issued.status, 200, "{}", issued.body);
        let r = app.get("/auth/me", Some(&token(&issued.body, "access_token"))).await;
        assert_eq!(r.status, 200, "{}", r.body);
    } else {
        skipped_part("a token a second node issued", NEEDS_POSTGRES);
    }
    app.get("/auth/me", Some("not-a-jwt")).await.assert(429, "rate_limited");

    // A good signature on a revoked session is still a failure, counted after the check.
    app.advance(Duration::from_secs(60));
    assert_eq!(app.post("/auth/logout", json!({}), Some(&access)).await.status, 204);
    for _ in 0..99 {
        app.get("/auth/me", Some("not-a-jwt")).await.assert(401, "invalid_token");
    }
    app.get("/auth/me", Some(&minted(TEST_SEED, "peer-2"))).await.assert(401, "invalid_token");
    app.get("/auth/me", Some("not-a-jwt")).await.assert(429, "rate_limited");
}

#[tokio::test]
async fn a_port_or_an_unreadable_hop_from_the_proxy_does_not_let_a_client_pick_its_address() {
    let app = TestApp::spawn_with(&[("trusted_proxies", "127.0.0.1")]).await;
    // The client writes a new address of its own each time; the proxy appends what it saw, here
    // with the port some proxies add, or a name it will not reveal.
    let login = |forwarded: String, i: usize| {
        app.client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"email": format!("user{i}@example.com"), "password": "whatever-123"}))
    };
    // Counted as 198.51.100.7, then as the proxy itself (127.0.0.1): one budget each.
    for proxy_wrote in ["198.51.100.7:5678", "unknown"] {
        for i in 0..30 {
            let forwarded = format!("203.0.113.{i}, {proxy_wrote}");
            app.send(login(forwarded, i)).await.assert(401, "invalid_credentials");
        }
        let refused = app.send(login(format!("203.0.113.99, {proxy_wrote}"), 99)).await;
        refused.assert(429, "rate_limited");
    }

    // The audit log names the address the proxy saw, not the one the client wrote.
    app.register("ana@example.com").await;
    let wrong = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "203.0.113.200, 192.0.2.44:1234")
        .json(&json!({"email": "ana@example.com", "password": "wrong-password-123"}));
    app.send(wrong).await.assert(401, "invalid_credentials");
    app.flush_audit().await;
    let sql = "SELECT COUNT(*) FROM audit_logs WHERE action = 'login.failed' AND ip = $1";
    assert_eq!(app.count_with(sql, &["192.0.2.44"]).await, 1);
    assert_eq!(app.count_with(sql, &["203.0.113.200"]).await, 0);
}
