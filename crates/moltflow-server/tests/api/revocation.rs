//! Revocation across nodes (API.md §5): two apps over one PostgreSQL schema, each with its own
//! caches and listener. A revocation on one is refused by the other within 100 ms; the message
//! that carries it leaves with the commit, never with a rollback, and names no secret; a listener
//! whose connection is killed comes back by itself. On SQLite (one node) these are skipped.

use std::time::{Duration, Instant};

use moltflow_app::auth::revocation::Invalidation;
use moltflow_store::signals::{Heard, LISTENER_APPLICATION_NAME};
use reqwest::Method;
use serde_json::json;

use crate::common::{NEEDS_POSTGRES, TestApp, eventually_every, skipped, token};

const WITHIN: Duration = Duration::from_millis(100);

/// Two nodes over one schema, or `None` (with a note) on SQLite.
async fn two_nodes() -> Option<(TestApp, TestApp)> {
    let a = TestApp::spawn().await;
    let Some(b) = a.spawn_peer().await else {
        skipped(NEEDS_POSTGRES);
        return None;
    };
    Some((a, b))
}

enum Credential<'a> {
    Key(&'a str),
    Bearer(&'a str),
}

async fn me_status(app: &TestApp, credential: &Credential<'_>) -> u16 {
    match credential {
        Credential::Key(key) => app.with_key(Method::GET, "/auth/me", key, None).await.status,
        Credential::Bearer(token) => app.get("/auth/me", Some(token)).await.status,
    }
}

/// Polls `app` (every 2 ms) until `credential` is refused; panics if a request sent `WITHIN` or
/// more after `since` (the moment the revoking request was answered) is still accepted.
async fn refused_within(app: &TestApp, credential: Credential<'_>, since: Instant, what: &str) {
    eventually_every(Duration::from_secs(10), Duration::from_millis(2), format!("{what} refused"), async || {
        let sent = since.elapsed();
        let status = me_status(app, &credential).await;
        if status == 401 {
            return Ok(());
        }
        assert_eq!(status, 200, "{what}");
        assert!(sent < WITHIN, "{what}: the other node accepted a request sent {sent:?} after the revocation");
        Err(status)
    })
    .await;
}

#[tokio::test]
async fn a_revoked_key_and_ended_sessions_are_refused_by_the_other_node_within_100_ms() {
    let Some((a, b)) = two_nodes().await else { return };
    let owner = a.register("owner@example.com").await;
    let oat = token(&owner, "access_token");
    let key = a.create_key(&oat, &["account:read"]).await;
    let raw = token(&key, "raw_key");
    // Both nodes have the key and the session cached.
    for node in [&a, &b] {
        assert_eq!(me_status(node, &Credential::Key(&raw)).await, 200);
        assert_eq!(me_status(node, &Credential::Bearer(&oat)).await, 200);
    }

    let r =
        a.send(a.client.delete(a.url(&format!("/api-keys/{}", key["id"].as_str().unwrap()))).bearer_auth(&oat)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    refused_within(&b, Credential::Key(&raw), Instant::now(), "revoked key").await;

    // A rotation without grace ends the old secret on the other node too.
    let key = a.create_key(&oat, &["account:read"]).await;
    let old = token(&key, "raw_key");
    assert_eq!(me_status(&b, &Credential::Key(&old)).await, 200);
    let r = a.post(&format!("/api-keys/{}/rotate", key["id"].as_str().unwrap()), json!({}), Some(&oat)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    refused_within(&b, Credential::Key(&old), Instant::now(), "rotated key").await;
    assert_eq!(me_status(&b, &Credential::Key(&token(&r.body, "raw_key"))).await, 200);

    // Logout of this session on A; the token is refused on B.
    assert_eq!(me_status(&b, &Credential::Bearer(&oat)).await, 200);
    assert_eq!(a.post("/auth/logout", json!({}), Some(&oat)).await.status, 204);
    refused_within(&b, Credential::Bearer(&oat), Instant::now(), "logged-out session").await;
}

#[tokio::test]
async fn a_removed_member_and_a_demoted_admin_are_seen_so_by_the_other_node_within_100_ms() {
    let Some((a, b)) = two_nodes().await else { return };
    let owner = a.register("owner@example.com").await;
    let oat = token(&owner, "access_token");
    let admin = a.add_member(&owner, "admin@example.com", "admin").await;
    let (aat, admin_id) = (token(&admin, "access_token"), admin["user"]["id"].as_str().unwrap().to_owned());
    let me = b.get("/auth/me", Some(&aat)).await;
    assert_eq!(me.body["role"], "admin", "{}", me.body);

    let r =
        a.put_json(Method::PATCH, &format!("/tenant/members/{admin_id}"), json!({"role": "member"}), Some(&oat)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let since = Instant::now();
    eventually_every(
        Duration::from_secs(10),
        Duration::from_millis(2),
        "the demotion seen by the other node",
        async || {
            let sent = since.elapsed();
            let me = b.get("/auth/me", Some(&aat)).await;
            if me.body["role"] == "member" {
                return Ok(());
            }
            assert!(sent < WITHIN, "still an admin on the other node for a request sent {sent:?} after the demotion");
            Err(me.body)
        },
    )
    .await;

    let key = a.create_key(&aat, &["account:read"]).await;
    let raw = token(&key, "raw_key");
    assert_eq!(me_status(&b, &Credential::Key(&raw)).await, 200);
    let r = a.send(a.client.delete(a.url(&format!("/tenant/members/{admin_id}"))).bearer_auth(&oat)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let since = Instant::now();
    refused_within(&b, Credential::Bearer(&aat), since, "removed member's session").await;
    refused_within(&b, Credential::Key(&raw), since, "removed member's key").await;
}

#[tokio::test]
async fn the_message_leaves_with_the_commit_never_with_a_rollback_and_names_no_secret() {
    let Some((a, _b)) = two_nodes().await else { return };
    let mut listener = a.store.signals().expect("PostgreSQL").listen().await.expect("listen");
    let next = async |listener: &mut moltflow_store::signals::Listener| match tokio::time::timeout(
        Duration::from_millis(500),
        listener.recv(),
    )
    .await
    {
        Ok(Ok(Heard::Message(text))) => Some(text),
        Ok(Ok(Heard::Lost)) | Ok(Err(_)) => panic!("the listening connection was lost"),
        Err(_) => None,
    };

    let change = Invalidation::default().sessions(["rolled-back-session".to_owned()]);
    let mut tx = a.store.begin().await.unwrap();
    change.announce(&mut tx, &a.store, &a.state.auth_cache).await.unwrap();
    drop(tx);
    assert_eq!(next(&mut listener).await, None, "a rolled-back change was announced");

    let owner = a.register("owner@example.com").await;
    let oat = token(&owner, "access_token");
    let key = a.create_key(&oat, &["account:read"]).await;
    let raw = token(&key, "raw_key");
    let r =
        a.send(a.client.delete(a.url(&format!("/api-keys/{}", key["id"].as_str().unwrap()))).bearer_auth(&oat)).await;
    assert_eq!(r.status, 204);
    let text = loop {
        let text = next(&mut listener).await.expect("the revocation was announced");
        if text.contains("\"k\"") {
            break text;
        }
    };
    assert!(text.contains(&moltflow_core::secret::sha256_hex(&raw)), "{text}");
    assert!(!text.contains(&raw) && !text.contains(&raw[3..]), "the secret is in the message: {text}");
}

#[tokio::test]
async fn a_listener_whose_connection_is_killed_reconnects_and_hears_again() {
    let Some((a, b)) = two_nodes().await else { return };
    let channel = a.store.signals().expect("PostgreSQL").channel().to_owned();
    let listeners = format!(
        "FROM pg_stat_activity WHERE application_name = '{LISTENER_APPLICATION_NAME}' AND query = 'LISTEN \"{channel}\"' \
         AND datname = current_database()"
    );
    a.wait_count(&format!("SELECT COUNT(*) {listeners}"), 2).await;
    let (low, high) = (
        a.count(&format!("SELECT MIN(pid)::bigint {listeners}")).await,
        a.count(&format!("SELECT MAX(pid)::bigint {listeners}")).await,
    );
    let killed = a.count(&format!("SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) {listeners}) AS k")).await;
    assert_eq!(killed, 2);
    // Both come back by themselves: new backends listening on the channel.
    a.wait_count(&format!("SELECT COUNT(*) {listeners} AND pid NOT IN ({low}, {high})"), 2).await;

    let owner = a.register("owner@example.com").await;
    let oat = token(&owner, "access_token");
    let key = a.create_key(&oat, &["account:read"]).await;
    let raw = token(&key, "raw_key");
    assert_eq!(me_status(&b, &Credential::Key(&raw)).await, 200);
    let r =
        a.send(a.client.delete(a.url(&format!("/api-keys/{}", key["id"].as_str().unwrap()))).bearer_auth(&oat)).await;
    assert_eq!(r.status, 204);
    refused_within(&b, Credential::Key(&raw), Instant::now(), "revoked key after a reconnect").await;
    let metrics = b.send(b.client.get(format!("{}/metrics", b.base))).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("moltflow_revocation_listener_reconnects_total"), "{text}");
}
