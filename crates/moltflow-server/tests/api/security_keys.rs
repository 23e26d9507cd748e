//! Attacks on API keys and on what an account leaves behind (API.md §3, §5, revision 2): taking
//! over another user's key by rotating it, and keys an unverified registrant left for the owner of
//! the mailbox to inherit. Helpers shared with `security_members`.

use moltflow_core::secret::sha256_hex;
use reqwest::Method;
use serde_json::{Value, json};

use moltflow_core::clock::DAY_MS;
use moltflow_store::invitations::InvitationRow;

use crate::common::{PASSWORD, Resp, TestApp, app_with_owner, insert_invitation, token};
use crate::smtp::{Mail, mail_files};

/// Marks an address verified, as following the verification mail would.
pub async fn verified(app: &TestApp, email: &str) {
    let n = app.exec("UPDATE users SET email_verified = TRUE WHERE email = $1", &[email]).await;
    assert_eq!(n, 1, "{email}");
}

pub async fn delete(app: &TestApp, path: &str, bearer: &str) -> Resp {
    app.send(app.client.delete(app.url(path)).bearer_auth(bearer)).await
}

pub async fn patch(app: &TestApp, path: &str, body: Value, bearer: &str) -> Resp {
    app.put_json(Method::PATCH, path, body, Some(bearer)).await
}

pub fn id(body: &Value) -> String {
    body["id"].as_str().or_else(|| body["user"]["id"].as_str()).expect("an id").to_owned()
}

/// The newest mail (of the file transport) to `to` whose subject contains `subject`, after a pass
/// of the outbox.
pub async fn mail_to(app: &TestApp, to: &str, subject: &str) -> Mail {
    app.deliver_mail().await;
    mail_files(&app.mail_dir)
        .into_iter()
        .rfind(|m| {
            m.header("To").is_some_and(|t| t.contains(to)) && m.header("Subject").is_some_and(|s| s.contains(subject))
        })
        .unwrap_or_else(|| panic!("no mail to {to} about {subject:?}"))
}

async fn rotate(app: &TestApp, key_id: &str, bearer: &str) -> Resp {
    app.post(&format!("/api-keys/{key_id}/rotate"), json!({}), Some(bearer)).await
}

async fn rotate_with_key(app: &TestApp, key_id: &str, key: &str) -> Resp {
    app.with_key(Method::POST, &format!("/api-keys/{key_id}/rotate"), key, Some(json!({}))).await
}

/// How many `raw_key` fields a body carries (none but create and rotate answers should).
fn secrets_in(body: &Value) -> usize {
    body.to_string().matches("\"raw_key\"").count()
}

#[tokio::test]
async fn only_a_keys_creator_rotates_it_and_nobody_reads_another_users_secret() {
    let (app, owner, oat) = app_with_owner().await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let aat = token(&admin, "access_token");
    let second_owner = app.add_member(&owner, "second@example.com", "owner").await;
    let sat = token(&second_owner, "access_token");
    let owners_key = app.create_key(&oat, &["*"]).await;
    let (kid, secret) = (id(&owners_key), token(&owners_key, "raw_key"));
    let admins_key = token(&app.create_key(&aat, &["account:manage", "account:read"]).await, "raw_key");

    // The takeover of the review: the admin rotates the owner's `*` key to learn its secret.
    rotate(&app, &kid, &aat).await.assert(403, "not_key_owner");
    rotate_with_key(&app, &kid, &admins_key).await.assert(403, "not_key_owner");
    // Another owner may not either: the secret is its creator's alone.
    rotate(&app, &kid, &sat).await.assert(403, "not_key_owner");
    assert_eq!(app.count_with("SELECT COUNT(*) FROM api_keys WHERE key_hash = $1", &[&sha256_hex(&secret)]).await, 1);
    assert_eq!(app.with_key(Method::GET, "/auth/me", &secret, None).await.status, 200, "the secret is unchanged");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'api_key.rotated'").await, 0);

    // Another tenant's owner, admin or key gets 404 for the id, never 403 (nothing to learn).
    let stranger = app.register_verified("stranger@example.com").await;
    let stranger_at = token(&stranger, "access_token");
    let stranger_admin = token(&app.add_member(&stranger, "stranger-admin@example.com", "admin").await, "access_token");
    let stranger_key = token(&app.create_key(&stranger_at, &["*"]).await, "raw_key");
    rotate(&app, &kid, &stranger_at).await.assert(404, "not_found");
    rotate(&app, &kid, &stranger_admin).await.assert(404, "not_found");
    rotate_with_key(&app, &kid, &stranger_key).await.assert(404, "not_found");

    // Owners and admins still list, read and audit every key, without any secret.
    for bearer in [&aat, &sat] {
        let list = app.get("/api-keys", Some(bearer)).await;
        assert!(list.body.as_array().unwrap().iter().any(|k| k["id"] == kid.as_str()), "{}", list.body);
        let one = app.get(&format!("/api-keys/{kid}"), Some(bearer)).await;
        assert_eq!(one.status, 200);
        let audit = app.get("/audit-logs?limit=200", Some(bearer)).await;
        assert_eq!(audit.status, 200);
        for body in [&list.body, &one.body, &audit.body] {
            assert_eq!(secrets_in(body), 0, "a secret in {body}");
            assert!(!body.to_string().contains(&secret[3..]), "the owner's secret in {body}");
        }
    }

    // The creator rotates; an admin may still revoke.
    let rotated = rotate(&app, &kid, &oat).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = token(&rotated.body, "raw_key");
    assert_eq!(delete(&app, &format!("/api-keys/{kid}"), &aat).await.status, 204);
    app.with_key(Method::GET, "/auth/me", &new_secret, None).await.assert(401, "invalid_api_key");
}

#[tokio::test]
async fn a_key_rotates_only_keys_within_its_own_scopes() {
    let (app, _, oat) = app_with_owner().await;
    let full = app.create_key(&oat, &["*"]).await;
    let narrow = app.create_key(&oat, &["account:manage", "messages:send"]).await;
    let (full_id, narrow_id) = (id(&full), id(&narrow));
    let narrow_secret = token(&narrow, "raw_key");

    // Same creator, but the narrow key would get the secret of a key that may do everything.
    let r = rotate_with_key(&app, &full_id, &narrow_secret).await;
    r.assert(403, "scope_escalation");
    assert!(r.body["detail"].as_str().unwrap().contains("billing:manage"), "{}", r.body);
    assert_eq!(app.with_key(Method::GET, "/auth/me", &token(&full, "raw_key"), None).await.status, 200);

    // Within its scopes: itself, and (from the wider key) the narrow one.
    let again = rotate_with_key(&app, &narrow_id, &narrow_secret).await;
    assert_eq!(again.status, 200, "{}", again.body);
    let r = rotate_with_key(&app, &narrow_id, &token(&full, "raw_key")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'api_key.rotated'").await, 2);
}

/// The widest key an unverified account may make: everything but managing members and billing.
pub const UNVERIFIED_WIDEST: &[&str] = &["account:manage", "settings:manage", "usage:write", "messages:send"];

/// Registers `email` as an attacker would (never verified), with the widest key it may make;
/// returns `(access token, user id, raw key)`.
pub async fn pre_registered(app: &TestApp, email: &str) -> (String, String, String) {
    let pair = app.register(email).await;
    let at = token(&pair, "access_token");
    let key = token(&app.create_key(&at, UNVERIFIED_WIDEST).await, "raw_key");
    (at, id(&pair), key)
}

/// A pending invitation the account sent before invitations needed a verified email; returns its
/// raw token.
pub async fn legacy_invitation(app: &TestApp, inviter: &str, tenant_id: &str, to: &str) -> String {
    let raw = format!("legacy-invitation-{}", uuid::Uuid::new_v4().simple());
    let now = app.state.clock.now_ms();
    let row = InvitationRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.to_owned(),
        email: to.to_owned(),
        role: moltflow_core::Role::Admin,
        token_hash: sha256_hex(&raw),
        invited_by: Some(inviter.to_owned()),
        created_at: now,
        expires_at: now + DAY_MS,
        accepted_at: None,
        revoked_at: None,
    };
    insert_invitation(app, row).await;
    raw
}

pub async fn reset_password(app: &TestApp, email: &str, new_password: &str) {
    assert_eq!(app.post("/auth/forgot-password", json!({"email": email}), None).await.status, 202);
    let mail = mail_to(app, email, "Reset").await;
    let r = app.post("/auth/reset-password", json!({"token": mail.token(), "new_password": new_password}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn a_reset_of_an_unverified_account_revokes_every_key_and_invitation_it_made() {
    let app = TestApp::spawn().await;
    // The attacker registers the victim's address and keeps a key and an invitation to themself.
    let (at, user_id, key) = pre_registered(&app, "victim@corp.example").await;
    let tenant_id = app.get("/auth/me", Some(&at)).await.body["tenant_id"].as_str().unwrap().to_owned();
    let invitation = legacy_invitation(&app, &user_id, &tenant_id, "attacker@evil.example").await;
    assert_eq!(app.with_key(Method::GET, "/auth/me", &key, None).await.status, 200, "the key is hot in the cache");

    // The owner of the mailbox resets the password.
    reset_password(&app, "victim@corp.example", "quiet-meadow-lantern-77").await;

    // At once: the key, the invitation and the sessions are dead.
    app.with_key(Method::GET, "/auth/me", &key, None).await.assert(401, "invalid_api_key");
    app.get("/auth/me", Some(&at)).await.assert(401, "invalid_token");
    app.post("/auth/accept-invitation", json!({"token": invitation, "full_name": "Mallory"}), None)
        .await
        .assert(400, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE email = 'attacker@evil.example'").await, 0);
    let details = app
        .count(
            "SELECT COUNT(*) FROM audit_logs WHERE action = 'password.reset' AND details LIKE '%\"keys_revoked\":1%' \
             AND details LIKE '%\"invitations_revoked\":1%'",
        )
        .await;
    assert_eq!(details, 1, "the reset is audited with what it took back");
}

#[tokio::test]
async fn a_reset_of_a_verified_account_keeps_its_keys() {
    let app = TestApp::spawn().await;
    let (_, _, key) = pre_registered(&app, "ana@example.com").await;
    verified(&app, "ana@example.com").await;
    reset_password(&app, "ana@example.com", "quiet-meadow-lantern-77").await;
    assert_eq!(app.with_key(Method::GET, "/auth/me", &key, None).await.status, 200);
    assert_eq!(app.login("ana@example.com", PASSWORD).await.status, 401);
}
