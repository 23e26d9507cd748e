//! The yardstick of the API-key hot path (`bench/run.sh`): the least a server can do to answer
//! `GET /api/v2/auth/me` for an API key. axum on tokio, the SHA-256 of the `X-API-Key` header looked
//! up in a map of 100,001 key hashes (the benchmark's 100,000 seeded keys and its own), and a
//! stored body answered. No middleware, scopes, revocation, limits or metrics: MoltFlow's own
//! `/auth/me` with a key is measured against this, in the same run (target: at least 0.70 ×).
//!
//! ```text
//! cargo run --release -p moltflow-server --example bare_key_server -- ADDR RAW_KEY BODY_FILE
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// Body to answer, by the hex SHA-256 of a key (as MoltFlow stores key hashes).
type Keys = Arc<HashMap<String, Bytes>>;

fn key_hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

async fn me(State(keys): State<Keys>, headers: HeaderMap) -> Response {
    let Some(raw) = headers.get("x-api-key") else { return StatusCode::UNAUTHORIZED.into_response() };
    match keys.get(&key_hash(raw.as_bytes())) {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(raw_key), Some(body_file)) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: bare_key_server ADDR RAW_KEY BODY_FILE");
    };
    let body = Bytes::from(std::fs::read(body_file)?);
    let mut keys = HashMap::with_capacity(100_001);
    for i in 0..100_000 {
        keys.insert(key_hash(format!("mf_seed{i:040}").as_bytes()), body.clone());
    }
    keys.insert(key_hash(raw_key.as_bytes()), body);
    let app = Router::new().route("/api/v2/auth/me", get(me)).with_state(Arc::new(keys));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
