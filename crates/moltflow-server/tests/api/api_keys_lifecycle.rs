//! An API key's life after it is made: revoked (at once, and for requests racing the revoke),
//! rotated (with and without a grace period), expired.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::api_keys::raw;
use crate::common::{TestApp, app_with_owner, eventually, token};

#[tokio::test]
async fn a_revoked_key_fails_on_the_very_next_request() {
    let (app, _, at) = app_with_owner().await;
    let key = app.create_key(&at, &["account:read"]).await;
    let raw_key = raw(&key);
    assert_eq!(app.with_key(Method::GET, "/auth/me", &raw_key, None).await.status, 200);
    let url = app.url(&format!("/api-keys/{}", key["id"].as_str().unwrap()));
    assert_eq!(app.send(app.client.delete(&url).bearer_auth(&at)).await.status, 204);
    app.with_key(Method::GET, "/auth/me", &raw_key, None).await.assert(401, "invalid_api_key");
    // Idempotent, and audited once.
    assert_eq!(app.send(app.client.delete(&url).bearer_auth(&at)).await.status, 204);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'api_key.revoked'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_revoke_has_answered_no_request_with_the_key_succeeds() {
    let app = TestApp::spawn_with(&[("rate_limit_scale", "0")]).await;
    let owner = app.register("owner@example.com").await;
    let at = token(&owner, "access_token");
    let key = app.create_key(&at, &["account:read"]).await;
    let raw_key = raw(&key);
    let url = app.url(&format!("/api-keys/{}", key["id"].as_str().unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    // Answers each client has had so far: what the test waits on, instead of a span of time.
    let answered: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let users: Vec<_> = (0..4)
        .map(|i| {
            let client = app.client.clone();
            let me = app.url("/auth/me");
            let raw_key = raw_key.clone();
            let (stop, answered) = (stop.clone(), answered.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent_at = std::time::Instant::now();
                    let r = client.get(&me).header("x-api-key", &raw_key).send().await.unwrap();
                    answers.push((sent_at, r.status().as_u16()));
                    answered[i].fetch_add(1, Ordering::SeqCst);
                }
                answers
            })
        })
        .collect();
    let counts = || answered.iter().map(|n| n.load(Ordering::SeqCst)).collect::<Vec<_>>();
    // Real concurrency: the four clients are sending (each has had an answer) before the revoke …
    eventually(Duration::from_secs(10), "an answer to each of the four clients", async || {
        let seen = counts();
        if seen.iter().all(|n| *n > 0) { Ok(()) } else { Err(seen) }
    })
    .await;
    assert_eq!(app.send(app.client.delete(&url).bearer_auth(&at)).await.status, 204);
    let revoked_at = std::time::Instant::now();
    // … and each sends five more after it answered (one may have been in flight then).
    let before = counts();
    eventually(Duration::from_secs(10), "six more answers to each client after the revoke", async || {
        let seen = counts();
        if seen.iter().zip(&before).all(|(now, then)| *now >= then + 6) { Ok(()) } else { Err(seen) }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut after = 0;
    for u in users {
        for (sent_at, status) in u.await.unwrap() {
            if sent_at > revoked_at {
                after += 1;
                assert_eq!(status, 401, "request sent after revoke answered succeeded");
            }
        }
    }
    assert!(after >= 20, "only {after} requests were sent after the revoke answered");
}

#[tokio::test]
async fn rotation_replaces_the_secret_and_keeps_the_key() {
    let (app, _, at) = app_with_owner().await;
    let key = app.create_key(&at, &["account:read"]).await;
    let old = raw(&key);
    let id = key["id"].as_str().unwrap();
    let r = app.post(&format!("/api-keys/{id}/rotate"), json!({}), Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new = raw(&r.body);
    assert_ne!(new, old);
    assert_eq!((&r.body["id"], &r.body["name"], &r.body["scopes"]), (&key["id"], &key["name"], &key["scopes"]));
    assert_eq!(r.body["key_prefix"].as_str().unwrap(), &new[..7]);
    app.with_key(Method::GET, "/auth/me", &old, None).await.assert(401, "invalid_api_key");
    assert_eq!(app.with_key(Method::GET, "/auth/me", &new, None).await.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'api_key.rotated'").await, 1);
    // No body at all is the default grace of 0 too.
    let again = app.send(app.client.post(app.url(&format!("/api-keys/{id}/rotate"))).bearer_auth(&at)).await;
    assert_eq!(again.status, 200);
    app.with_key(Method::GET, "/auth/me", &new, None).await.assert(401, "invalid_api_key");
}

#[tokio::test]
async fn a_grace_period_keeps_the_old_secret_working_until_it_ends() {
    let (app, _, at) = app_with_owner().await;
    let key = app.create_key(&at, &["account:read"]).await;
    let old = raw(&key);
    let id = key["id"].as_str().unwrap();
    let r = app.post(&format!("/api-keys/{id}/rotate"), json!({"grace_period_minutes": 60}), Some(&at)).await;
    let new = raw(&r.body);
    assert_eq!(app.with_key(Method::GET, "/auth/me", &old, None).await.status, 200);
    assert_eq!(app.with_key(Method::GET, "/auth/me", &new, None).await.status, 200);
    // A moment before the hour ends the old secret still works; at the hour it stops.
    app.advance(Duration::from_secs(59 * 60 + 50));
    assert_eq!(app.with_key(Method::GET, "/auth/me", &old, None).await.status, 200);
    app.advance(Duration::from_secs(10));
    app.with_key(Method::GET, "/auth/me", &old, None).await.assert(401, "invalid_api_key");
    assert_eq!(app.with_key(Method::GET, "/auth/me", &new, None).await.status, 200);
}

#[tokio::test]
async fn revoked_keys_cannot_be_rotated_and_bad_grace_periods_are_refused() {
    let (app, _, at) = app_with_owner().await;
    let key = app.create_key(&at, &["account:read"]).await;
    let id = key["id"].as_str().unwrap();
    for bad in [
        json!({"grace_period_minutes": -1}),
        json!({"grace_period_minutes": 1441}),
        json!({"grace_period_minutes": "5"}),
        json!({"grace": 5}),
    ] {
        app.post(&format!("/api-keys/{id}/rotate"), bad, Some(&at)).await.assert(422, "validation_error");
    }
    assert_eq!(
        app.with_key(Method::GET, "/auth/me", &raw(&key), None).await.status,
        200,
        "bad rotations changed nothing"
    );
    app.send(app.client.delete(app.url(&format!("/api-keys/{id}"))).bearer_auth(&at)).await;
    app.post(&format!("/api-keys/{id}/rotate"), json!({}), Some(&at)).await.assert(409, "api_key_revoked");
}

#[tokio::test]
async fn expired_keys_are_refused_as_expired() {
    let (app, _, at) = app_with_owner().await;
    let key = app.create_key(&at, &["account:read"]).await;
    app.store.execute_raw("UPDATE api_keys SET expires_at = 1").await.unwrap();
    app.with_key(Method::GET, "/auth/me", &raw(&key), None).await.assert(401, "api_key_expired");
    let listed = app.get("/api-keys", Some(&at)).await.body;
    assert_eq!(listed[0]["is_active"], false);
    let id = key["id"].as_str().unwrap();
    app.post(&format!("/api-keys/{id}/rotate"), json!({}), Some(&at)).await.assert(409, "api_key_expired");
}
