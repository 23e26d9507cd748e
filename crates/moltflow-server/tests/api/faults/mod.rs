//! Faults on purpose (docs/operations.md): what a client sees when the database goes away, the
//! disk fills, Stripe or SMTP misbehave, or a client is slow or sends too much.

mod http_limits;
mod postgres_outage;
mod smtp;
mod sqlite_full;
mod stripe;

use serde_json::json;

use crate::common::{TestApp, token};

/// The pool is closed under the running service (the database gone for good, as far as this
/// process can tell): writes answer `503 database_unavailable` with `Retry-After`, not `500`;
/// `/readyz` says not ready; `/healthz` still says the process lives. Both backends.
#[tokio::test]
async fn a_database_that_is_gone_answers_503_database_unavailable_and_readyz_503() {
    let app = TestApp::spawn().await;
    let pair = app.register("gone@example.com").await;
    let access = token(&pair, "access_token");
    app.store.close().await;

    let r = app.post("/api-keys", json!({"name": "k", "scopes": ["usage:read"]}), Some(&access)).await;
    r.assert(503, "database_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.body["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(app.get("/healthz", None).await.status, 200);
}
