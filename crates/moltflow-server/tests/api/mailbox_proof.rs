//! The first proof of a mailbox (API.md §3, revision 3): whoever registered someone else's
//! address keeps nothing once the mailbox's owner proves it, by whichever mailed link: a magic
//! link, a verification link, a password reset or an invitation. Until then the account hands out
//! no power (keys managing members or billing, invitations, owner/admin grants).

use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{NEEDS_POSTGRES, PASSWORD, TestApp, eventually, skipped, token};
use crate::security_keys::{UNVERIFIED_WIDEST, id, legacy_invitation, mail_to, patch, pre_registered, verified};

/// What a pre-registrant holds: two sessions (registration and a login), the widest key it may
/// make, and an invitation it sent before invitations needed a verified address.
struct Squatter {
    sessions: Vec<Value>,
    key: String,
    invitation: String,
}

async fn squat(app: &TestApp, email: &str) -> Squatter {
    let (at, user_id, key) = pre_registered(app, email).await;
    let tenant_id = app.get("/auth/me", Some(&at)).await.body["tenant_id"].as_str().unwrap().to_owned();
    let invitation = legacy_invitation(app, &user_id, &tenant_id, "accomplice@evil.example").await;
    let login = app.login(email, PASSWORD).await;
    assert_eq!(login.status, 200);
    let registration = json!({"access_token": at, "refresh_token": ""});
    // Everything is hot in this node's caches.
    assert_eq!(app.with_key(Method::GET, "/auth/me", &key, None).await.status, 200);
    Squatter { sessions: vec![registration, login.body], key, invitation }
}

/// Nothing the squatter held works any more, and the account has no password.
async fn assert_taken_back(app: &TestApp, email: &str, s: &Squatter) {
    app.with_key(Method::GET, "/auth/me", &s.key, None).await.assert(401, "invalid_api_key");
    for pair in &s.sessions {
        app.get("/auth/me", Some(&token(pair, "access_token"))).await.assert(401, "invalid_token");
        if let Some(refresh) = pair["refresh_token"].as_str().filter(|r| !r.is_empty()) {
            assert_eq!(app.post("/auth/refresh", json!({"refresh_token": refresh}), None).await.status, 401);
        }
    }
    app.login(email, PASSWORD).await.assert(401, "invalid_credentials");
    app.post("/auth/accept-invitation", json!({"token": s.invitation, "full_name": "Mallory"}), None)
        .await
        .assert(400, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").await, 0);
    assert_eq!(
        app.count_with("SELECT COUNT(*) FROM users WHERE email = $1 AND password_hash IS NULL", &[email]).await,
        1
    );
    assert_eq!(
        app.count_with("SELECT COUNT(*) FROM users WHERE email = $1 AND email_verified = TRUE", &[email]).await,
        1
    );
}

/// The notice of the first proof to `email`, which lists what was taken back.
async fn notice(app: &TestApp, email: &str) -> String {
    mail_to(app, email, "address is confirmed").await.text
}

#[tokio::test]
async fn a_magic_link_takes_back_everything_a_pre_registrant_set_up() {
    let app = TestApp::spawn().await;
    let squatter = squat(&app, "victim@corp.example").await;

    // The mailbox's owner signs in by magic link.
    app.post("/auth/magic-link/request", json!({"email": "victim@corp.example"}), None).await;
    let link = mail_to(&app, "victim@corp.example", "sign-in link").await;
    let owner = app.post("/auth/magic-link/verify", json!({"token": link.token()}), None).await;
    assert_eq!(owner.status, 200, "{}", owner.body);

    assert_taken_back(&app, "victim@corp.example", &squatter).await;
    // The new session is the only one that works, and it knows it has no password.
    let me = app.get("/users/me", Some(&token(&owner.body, "access_token"))).await;
    assert_eq!((me.status, &me.body["email_verified"], &me.body["has_password"]), (200, &json!(true), &json!(false)));
    let text = notice(&app, "victim@corp.example").await;
    for line in [
        "You signed in with a link we emailed",
        "2 signed-in sessions, signed out",
        "1 API key, revoked",
        "1 pending invitation, withdrawn",
        "the password set before this proof",
    ] {
        assert!(text.contains(line), "{line:?} missing from {text}");
    }
    let audited = app
        .count(
            "SELECT COUNT(*) FROM audit_logs WHERE action = 'email.verified' AND details LIKE '%\"via\":\"magic_link\"%' \
             AND details LIKE '%\"keys_revoked\":1%' AND details LIKE '%\"sessions_revoked\":2%' \
             AND details LIKE '%\"password_removed\":true%'",
        )
        .await;
    assert_eq!(audited, 1);

    // The escalation of the audit: with the address verified the squatter's key would now have
    // invited a second address as owner. It is dead; and a later reset keeps the owner alone.
    let r = app
        .with_key(
            Method::POST,
            "/tenant/invitations",
            &squatter.key,
            Some(json!({"email": "second@evil.example", "role": "owner"})),
        )
        .await;
    r.assert(401, "invalid_api_key");
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations WHERE accepted_at IS NULL AND revoked_at IS NULL").await, 0);
    // A second magic link is no first proof: it takes nothing back from the owner's own session.
    app.post("/auth/magic-link/request", json!({"email": "victim@corp.example"}), None).await;
    let again = mail_to(&app, "victim@corp.example", "sign-in link").await;
    assert_eq!(app.post("/auth/magic-link/verify", json!({"token": again.token()}), None).await.status, 200);
    assert_eq!(app.get("/auth/me", Some(&token(&owner.body, "access_token"))).await.status, 200);
}

#[tokio::test]
async fn a_verification_link_takes_back_everything_and_says_so() {
    let app = TestApp::spawn().await;
    let squatter = squat(&app, "victim@corp.example").await;
    let link = mail_to(&app, "victim@corp.example", "Confirm your email").await;
    let r = app.post("/auth/verify-email", json!({"token": link.token()}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("1 API key, revoked") && detail.contains("magic link"), "{detail}");
    assert_taken_back(&app, "victim@corp.example", &squatter).await;
    assert!(notice(&app, "victim@corp.example").await.contains("You confirmed your email address"));
    // Only the first proof takes back: the address is verified now and a reset keeps new keys.
    verified(&app, "victim@corp.example").await;
}

#[tokio::test]
async fn a_password_reset_takes_back_the_password_sessions_keys_and_invitations() {
    let app = TestApp::spawn().await;
    let squatter = squat(&app, "victim@corp.example").await;
    crate::security_keys::reset_password(&app, "victim@corp.example", "quiet-meadow-lantern-77").await;
    app.with_key(Method::GET, "/auth/me", &squatter.key, None).await.assert(401, "invalid_api_key");
    for pair in &squatter.sessions {
        app.get("/auth/me", Some(&token(pair, "access_token"))).await.assert(401, "invalid_token");
    }
    app.login("victim@corp.example", PASSWORD).await.assert(401, "invalid_credentials");
    assert_eq!(app.login("victim@corp.example", "quiet-meadow-lantern-77").await.status, 200);
    let text = notice(&app, "victim@corp.example").await;
    assert!(text.contains("You reset the password") && text.contains("1 API key, revoked"), "{text}");
}

#[tokio::test]
async fn an_invitation_to_a_pre_registered_address_takes_the_account_back() {
    let app = TestApp::spawn().await;
    let owner = app.register_verified("owner@corp.example").await;
    let r = app
        .post("/tenant/invitations", json!({"email": "victim@corp.example"}), Some(&token(&owner, "access_token")))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The address is registered elsewhere after the invitation left.
    let squatter = squat(&app, "victim@corp.example").await;
    let invitation = mail_to(&app, "victim@corp.example", "invited").await;

    let r =
        app.post("/auth/accept-invitation", json!({"token": invitation.token(), "full_name": "Victim"}), None).await;
    r.assert(409, "email_taken");
    assert!(r.body["detail"].as_str().unwrap().contains("taken back"), "{}", r.body);
    assert_taken_back(&app, "victim@corp.example", &squatter).await;
    assert!(notice(&app, "victim@corp.example").await.contains("You opened an invitation"));
    // Nobody joined; the invitation stays open for when that account is gone.
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations WHERE email = 'victim@corp.example' AND accepted_at IS NULL AND revoked_at IS NULL").await, 1);
    // A verified account at the address is no proof of anything: nothing changes.
    let r =
        app.post("/auth/accept-invitation", json!({"token": invitation.token(), "full_name": "Victim"}), None).await;
    r.assert(409, "email_taken");
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE kind = 'account_secured'").await, 1);
}

#[tokio::test]
async fn an_unverified_account_grants_no_owner_or_admin_role() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let at = token(&owner, "access_token");
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let member_id = id(&member);
    for role in ["admin", "owner"] {
        patch(&app, &format!("/tenant/members/{member_id}"), json!({"role": role}), &at)
            .await
            .assert(403, "email_unverified");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE role = 'member'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'member.role_changed'").await, 0);
    verified(&app, "owner@example.com").await;
    let r = patch(&app, &format!("/tenant/members/{member_id}"), json!({"role": "admin"}), &at).await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("admin")), "{}", r.body);
}

#[tokio::test]
async fn keys_made_while_the_proof_runs_do_not_survive_it() {
    let app = TestApp::spawn_with(&[("rate_limit_scale", "0")]).await;
    let (at, _, key) = pre_registered(&app, "victim@corp.example").await;
    app.post("/auth/magic-link/request", json!({"email": "victim@corp.example"}), None).await;
    let link = mail_to(&app, "victim@corp.example", "sign-in link").await;
    let body = json!({"name": "race", "scopes": UNVERIFIED_WIDEST});
    // The squatter mints keys as fast as it can, with its session and its key, while the owner
    // of the mailbox follows the link.
    let mints = (0..24).map(|i| {
        let (app, at, key, body) = (&app, &at, &key, body.clone());
        async move {
            if i % 2 == 0 {
                app.post("/api-keys", body, Some(at)).await.status
            } else {
                app.with_key(Method::POST, "/api-keys", key, Some(body)).await.status
            }
        }
    });
    let proof = async { app.post("/auth/magic-link/verify", json!({"token": link.token()}), None).await.status };
    let (statuses, proved) = futures::join!(join_all(mints), proof);
    assert_eq!(proved, 200);
    assert!(statuses.iter().all(|s| [201, 401].contains(s)), "{statuses:?}");
    // Whatever was minted before the proof was taken back with it; nothing was minted after.
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").await, 0);
}

#[tokio::test]
async fn the_notice_of_a_proof_uses_up_no_mail_allowance() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com").await;
    let link = mail_to(&app, "ana@example.com", "Confirm your email").await;
    assert_eq!(app.post("/auth/verify-email", json!({"token": link.token()}), None).await.status, 200);
    // The verification mail and the notice are two rows; the hourly cap of 3 counts one.
    for _ in 0..3 {
        app.post("/auth/magic-link/request", json!({"email": "ana@example.com"}), None).await;
    }
    app.deliver_mail().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE kind = 'magic_link'").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE kind = 'account_secured'").await, 1);
}

#[tokio::test]
async fn the_other_node_refuses_what_a_proof_took_back() {
    let a = TestApp::spawn().await;
    let Some(b) = a.spawn_peer().await else {
        return skipped(NEEDS_POSTGRES);
    };
    let (at, _, key) = pre_registered(&a, "victim@corp.example").await;
    assert_eq!(b.with_key(Method::GET, "/auth/me", &key, None).await.status, 200);
    assert_eq!(b.get("/auth/me", Some(&at)).await.status, 200);
    let link = mail_to(&a, "victim@corp.example", "Confirm your email").await;
    assert_eq!(a.post("/auth/verify-email", json!({"token": link.token()}), None).await.status, 200);
    eventually(std::time::Duration::from_secs(2), "the other node to refuse the key and the session", async || {
        let (k, s) =
            (b.with_key(Method::GET, "/auth/me", &key, None).await.status, b.get("/auth/me", Some(&at)).await.status);
        if (k, s) == (401, 401) { Ok(()) } else { Err(format!("key {k}, session {s}")) }
    })
    .await;
}
