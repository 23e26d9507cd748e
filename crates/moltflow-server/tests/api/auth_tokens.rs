use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::{TEST_SEED, TestApp, token};

/// Signs `claims` with the key of `seed` and the app's `kid` (or another).
pub fn sign(seed: [u8; 32], kid: &str, claims: &Value) -> String {
    let der = SigningKey::from_bytes(&seed).to_pkcs8_der().unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

pub fn claims_of(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn access_tokens_carry_the_contract_claims_and_kid() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let at = token(&pair, "access_token");
    let claims = claims_of(&at);
    for field in ["sub", "tid", "role", "sid", "jti", "iat", "exp", "iss", "aud"] {
        assert!(!claims[field].is_null(), "claim {field} missing: {claims}");
    }
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 1800);
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(at.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(header["kid"], jwks.body["keys"][0]["kid"]);

    // The published key verifies the token offline.
    let jwk = &jwks.body["keys"][0];
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    let key = jsonwebtoken::DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[claims["aud"].as_str().unwrap()]);
    assert!(jsonwebtoken::decode::<Value>(&at, &key, &validation).is_ok());
}

#[tokio::test]
async fn expired_garbled_and_foreign_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let at = token(&pair, "access_token");
    let kid = app.state.jwt.kid().to_owned();
    let mut claims = claims_of(&at);

    // Sanity: a token we sign ourselves with the app's key and fresh times is accepted.
    assert_eq!(app.get("/auth/me", Some(&sign(TEST_SEED, &kid, &claims))).await.status, 200);

    claims["iat"] = json!(claims["iat"].as_i64().unwrap() - 7200);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() - 7200);
    app.get("/auth/me", Some(&sign(TEST_SEED, &kid, &claims))).await.assert(401, "token_expired");

    let fresh = claims_of(&at);
    app.get("/auth/me", Some(&sign([9; 32], &kid, &fresh))).await.assert(401, "invalid_token");
    app.get("/auth/me", Some(&sign(TEST_SEED, "other-kid", &fresh))).await.assert(401, "invalid_token");
    let mut foreign_aud = fresh.clone();
    foreign_aud["aud"] = json!("someone-else");
    app.get("/auth/me", Some(&sign(TEST_SEED, &kid, &foreign_aud))).await.assert(401, "invalid_token");

    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(fresh.to_string())
    );
    app.get("/auth/me", Some(&unsigned)).await.assert(401, "invalid_token");
    let mut tampered = at.clone();
    tampered.pop();
    tampered.push(if at.ends_with('A') { 'B' } else { 'A' });
    app.get("/auth/me", Some(&tampered)).await.assert(401, "invalid_token");
    app.get("/auth/me", Some("garbage")).await.assert(401, "invalid_token");
    app.get("/auth/me", Some("")).await.assert(401, "invalid_token");
}

#[tokio::test]
async fn missing_credentials_ask_for_bearer() {
    let app = TestApp::spawn().await;
    let r = app.get("/auth/me", None).await;
    r.assert(401, "not_authenticated");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let basic = app.send(app.client.get(app.url("/auth/me")).header("authorization", "Basic YTpi")).await;
    basic.assert(401, "invalid_token");
}

#[tokio::test]
async fn unknown_api_keys_are_refused() {
    let app = TestApp::spawn().await;
    let r = app.send(app.client.get(app.url("/auth/me")).header("x-api-key", "mf_doesnotexist")).await;
    r.assert(401, "invalid_api_key");
    app.get("/auth/me", Some("mf_doesnotexist")).await.assert(401, "invalid_api_key");
}

#[tokio::test]
async fn a_deleted_user_token_stops_working() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let at = token(&pair, "access_token");
    assert_eq!(app.get("/auth/me", Some(&at)).await.status, 200);
    app.store.execute_raw("DELETE FROM users").await.unwrap();
    // Another node may have deleted it: this one trusts its cached session state for a second.
    app.advance(Duration::from_secs(1));
    app.get("/auth/me", Some(&at)).await.assert(401, "invalid_token");
}

#[tokio::test]
async fn an_access_token_expires_after_thirty_minutes_and_the_refresh_token_carries_on() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let at = token(&pair, "access_token");
    // Valid until its 30 minutes (and 5 s of tolerated clock skew, see `auth::jwt`) are over.
    app.advance(Duration::from_secs(30 * 60 - 5));
    assert_eq!(app.get("/auth/me", Some(&at)).await.status, 200);
    app.advance(Duration::from_secs(12));
    app.get("/auth/me", Some(&at)).await.assert(401, "token_expired");
    let refreshed = app.post("/auth/refresh", json!({"refresh_token": token(&pair, "refresh_token")}), None).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(app.get("/auth/me", Some(&token(&refreshed.body, "access_token"))).await.status, 200);
}

#[tokio::test]
async fn a_key_in_use_is_read_again_before_its_state_expires_and_a_change_is_seen_within_the_second() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let key =
        app.create_key(&token(&pair, "access_token"), &["account:read"]).await["raw_key"].as_str().unwrap().to_owned();
    let me = || app.with_key(reqwest::Method::GET, "/auth/me", &key, None);
    let lookups = || app.state.auth_cache.key_lookups();

    assert_eq!(me().await.status, 200);
    let first = lookups();
    app.advance(Duration::from_millis(500));
    assert_eq!(me().await.status, 200);
    assert_eq!(lookups(), first, "a state younger than the refresh age is used as is");

    // Three quarters of a second old: the next request reads it again for the others...
    app.advance(Duration::from_millis(300));
    assert_eq!(me().await.status, 200);
    assert_eq!(lookups(), first + 1);
    // ...so at 1.2 s after the first read, past the state's one-second life, nobody reads or waits.
    app.advance(Duration::from_millis(400));
    assert_eq!(me().await.status, 200);
    assert_eq!(me().await.status, 200);
    assert_eq!(lookups(), first + 1);

    // A change made behind the cache's back (another node, no signal) is seen within the second.
    app.store.execute_raw("UPDATE api_keys SET revoked_at = 1").await.unwrap();
    app.advance(Duration::from_millis(300));
    assert_eq!(me().await.status, 200, "the state read at 0.8 s is trusted until 1.8 s");
    app.advance(Duration::from_millis(300));
    me().await.assert(401, "invalid_api_key");
}

#[tokio::test]
async fn a_session_in_use_is_read_again_before_its_state_expires_and_a_deleted_user_is_refused_within_the_second() {
    let app = TestApp::spawn().await;
    let pair = app.register("ana@example.com").await;
    let at = token(&pair, "access_token");
    assert_eq!(app.get("/auth/me", Some(&at)).await.status, 200);
    app.advance(Duration::from_millis(800));
    assert_eq!(app.get("/auth/me", Some(&at)).await.status, 200);
    // Read again at 0.8 s: the deletion at 0.9 s is seen by 1.8 s at the latest, not before.
    app.advance(Duration::from_millis(100));
    app.store.execute_raw("DELETE FROM users").await.unwrap();
    app.advance(Duration::from_millis(400));
    assert_eq!(app.get("/auth/me", Some(&at)).await.status, 200, "the state read at 0.8 s is trusted");
    app.advance(Duration::from_millis(500));
    app.get("/auth/me", Some(&at)).await.assert(401, "invalid_token");
}
