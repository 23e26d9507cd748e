//! Attacks through members and invitations (API.md §8, revision 2): invitations from unverified
//! accounts and mail bombing, a removed admin's invitations, roles granted beyond the granter's
//! reach, and owners racing each other out of the tenant.

use futures::future::join_all;
use reqwest::Method;
use serde_json::json;

use moltflow_core::clock::{DAY_MS, HOUR_MS};
use moltflow_store::invitations::InvitationRow;

use crate::common::{PASSWORD, Resp, TestApp, insert_invitation, token};
use crate::security_keys::{delete, id, mail_to, patch, verified};

async fn invite(app: &TestApp, bearer: &str, email: &str, role: &str) -> Resp {
    app.post("/tenant/invitations", json!({"email": email, "role": role}), Some(bearer)).await
}

/// A registered owner whose email is verified: `(token pair, access token)`.
async fn verified_owner(app: &TestApp, email: &str) -> (serde_json::Value, String) {
    let pair = app.register(email).await;
    verified(app, email).await;
    let at = token(&pair, "access_token");
    (pair, at)
}

async fn accept(app: &TestApp, email: &str) -> Resp {
    let mail = mail_to(app, email, "invit").await;
    app.post("/auth/accept-invitation", json!({"token": mail.token(), "full_name": "Invitee"}), None).await
}

#[tokio::test]
async fn only_users_with_a_verified_email_invite() {
    let app = TestApp::spawn().await;
    let at = token(&app.register("owner@example.com").await, "access_token");
    invite(&app, &at, "anyone@example.com", "member").await.assert(403, "email_unverified");
    // Nor may it make a key that could invite (or buy plans) in its place.
    for scopes in [&["members:manage"][..], &["billing:manage"], &["*"], &["account:read", "members:manage"]] {
        let r = app.post("/api-keys", json!({"name": "k", "scopes": scopes}), Some(&at)).await;
        r.assert(403, "email_unverified");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE kind = 'invitation'").await, 0);

    verified(&app, "owner@example.com").await;
    let key = token(&app.create_key(&at, &["*"]).await, "raw_key");
    assert_eq!(invite(&app, &at, "anyone@example.com", "member").await.status, 201);
    let by_key =
        app.with_key(Method::POST, "/tenant/invitations", &key, Some(json!({"email": "another@example.com"}))).await;
    assert_eq!(by_key.status, 201, "{}", by_key.body);
    // A key invites as its creator, judged as stored now (say the address was changed outside the API).
    app.exec("UPDATE users SET email_verified = FALSE WHERE email = $1", &["owner@example.com"]).await;
    app.with_key(Method::POST, "/tenant/invitations", &key, Some(json!({"email": "third@example.com"})))
        .await
        .assert(403, "email_unverified");
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations").await, 2);
}

#[tokio::test]
async fn an_address_gets_at_most_three_invitation_mails_an_hour_from_all_tenants() {
    let app = TestApp::spawn().await;
    let (_, a) = verified_owner(&app, "a@example.com").await;
    let (_, b) = verified_owner(&app, "b@example.com").await;
    for _ in 0..3 {
        assert_eq!(invite(&app, &a, "target@example.com", "member").await.status, 201);
    }
    let r = invite(&app, &a, "target@example.com", "member").await;
    r.assert(429, "rate_limited");
    let wait: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((3500..=3600).contains(&wait), "{wait}");
    // From another tenant too: the cap is the address's.
    invite(&app, &b, "target@example.com", "member").await.assert(429, "rate_limited");
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE kind = 'invitation'").await, 3);
    // Other addresses are not affected; an hour later the address may be invited again.
    assert_eq!(invite(&app, &b, "other@example.com", "member").await.status, 201);
    app.store.execute_raw("UPDATE mail_outbox SET created_at = created_at - 3600000").await.unwrap();
    assert_eq!(invite(&app, &b, "target@example.com", "member").await.status, 201);
}

#[tokio::test]
async fn a_tenant_sends_at_most_a_hundred_invitations_a_day() {
    let app = TestApp::spawn().await;
    let (owner, at) = verified_owner(&app, "owner@example.com").await;
    let tenant = owner["user"]["tenant_id"].as_str().unwrap();
    let user = id(&owner);
    // 100 invitations sent over the last day, the oldest 23 hours ago.
    let now = app.state.clock.now_ms();
    for i in 0..100 {
        let at = now - 23 * HOUR_MS + i;
        let row = InvitationRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.to_owned(),
            email: format!("bulk{i}@example.com"),
            role: moltflow_core::Role::Member,
            token_hash: format!("hash{i}"),
            invited_by: Some(user.clone()),
            created_at: at,
            expires_at: at + 7 * DAY_MS,
            accepted_at: None,
            revoked_at: None,
        };
        insert_invitation(&app, row).await;
    }
    let r = invite(&app, &at, "one-more@example.com", "member").await;
    r.assert(429, "rate_limited");
    let wait: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((3500..=3600).contains(&wait), "until the oldest leaves the window: {wait}");
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations").await, 100);
    assert_eq!(app.count("SELECT COUNT(*) FROM mail_outbox WHERE kind = 'invitation'").await, 0);
    // Two hours on, the oldest have left the 24-hour window.
    app.store.execute_raw("UPDATE invitations SET created_at = created_at - 7200000").await.unwrap();
    assert_eq!(invite(&app, &at, "one-more@example.com", "member").await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_invitations_to_one_address_stay_within_the_cap() {
    let app = TestApp::spawn_with(&[("rate_limit_scale", "0")]).await;
    let mut owners = Vec::new();
    for i in 0..8 {
        owners.push(verified_owner(&app, &format!("owner{i}@example.com")).await.1);
    }
    // Eight tenants mail one address at the same moment: the count and the insert of each are
    // serialised in the database, so exactly three get through.
    let answers = join_all(owners.iter().map(|at| invite(&app, at, "target@example.com", "member"))).await;
    let created = answers.iter().filter(|r| r.status == 201).count();
    let limited = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!((created, limited), (3, 5), "{:?}", answers.iter().map(|r| &r.body).collect::<Vec<_>>());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM mail_outbox WHERE kind = 'invitation' AND to_addr = 'target@example.com'")
            .await,
        3
    );
}

#[tokio::test]
async fn removing_or_demoting_a_member_revokes_the_invitations_they_sent() {
    let app = TestApp::spawn().await;
    let (owner, oat) = verified_owner(&app, "owner@example.com").await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    verified(&app, "admin@example.com").await;
    let (aat, admin_id) = (token(&admin, "access_token"), id(&admin));

    // Demoted to member: the invitations the admin sent die with the right to send them.
    assert_eq!(invite(&app, &aat, "second-address@example.com", "member").await.status, 201);
    let r = patch(&app, &format!("/tenant/members/{admin_id}"), json!({"role": "member"}), &oat).await;
    assert_eq!(r.status, 200, "{}", r.body);
    accept(&app, "second-address@example.com").await.assert(400, "invalid_token");

    // Removed: the admin's earlier invitation to their own second address does not bring them back.
    patch(&app, &format!("/tenant/members/{admin_id}"), json!({"role": "admin"}), &oat).await;
    let aat = token(&app.login("admin@example.com", PASSWORD).await.body, "access_token");
    assert_eq!(invite(&app, &aat, "comeback@example.com", "member").await.status, 201);
    assert_eq!(delete(&app, &format!("/tenant/members/{admin_id}"), &oat).await.status, 204);
    accept(&app, "comeback@example.com").await.assert(400, "invalid_token");
    let statuses: Vec<String> = app
        .get("/tenant/invitations", Some(&oat))
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["revoked", "revoked"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'member.removed' AND details LIKE '%\"invitations_revoked\":1%'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_owner_demoted_to_admin_keeps_only_the_invitations_an_admin_may_send() {
    let app = TestApp::spawn().await;
    let (owner, oat) = verified_owner(&app, "owner@example.com").await;
    let second = app.add_member(&owner, "second@example.com", "owner").await;
    verified(&app, "second@example.com").await;
    let sat = token(&second, "access_token");
    assert_eq!(invite(&app, &sat, "new-admin@example.com", "admin").await.status, 201);
    assert_eq!(invite(&app, &sat, "new-member@example.com", "member").await.status, 201);
    let r = patch(&app, &format!("/tenant/members/{}", id(&second)), json!({"role": "admin"}), &oat).await;
    assert_eq!(r.status, 200, "{}", r.body);
    accept(&app, "new-admin@example.com").await.assert(400, "invalid_token");
    let joined = accept(&app, "new-member@example.com").await;
    assert_eq!((joined.status, joined.body["user"]["role"].as_str()), (201, Some("member")), "{}", joined.body);
}

#[tokio::test]
async fn an_invitation_dies_when_its_sender_may_no_longer_grant_its_role() {
    let app = TestApp::spawn().await;
    let (owner, _) = verified_owner(&app, "owner@example.com").await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    verified(&app, "admin@example.com").await;
    assert_eq!(invite(&app, &token(&admin, "access_token"), "friend@example.com", "member").await.status, 201);
    // The role changes outside the API (an operator's SQL, a restored backup): the invitation is
    // still pending, but its sender could no longer send it.
    app.exec("UPDATE users SET role = 'member' WHERE id = $1", &[&id(&admin)]).await;
    accept(&app, "friend@example.com").await.assert(400, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE email = 'friend@example.com'").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations WHERE accepted_at IS NOT NULL").await, 0);
}

#[tokio::test]
async fn a_key_grants_no_role_wider_than_itself() {
    let app = TestApp::spawn().await;
    let (owner, oat) = verified_owner(&app, "owner@example.com").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let key = token(&app.create_key(&oat, &["members:manage"]).await, "raw_key");
    // A key that may only manage members would otherwise invite its holder in as owner, or make
    // the holder's member account an owner, and so gain every scope.
    for role in ["member", "admin", "owner"] {
        let body = json!({"email": "holder@example.com", "role": role});
        app.with_key(Method::POST, "/tenant/invitations", &key, Some(body)).await.assert(403, "scope_escalation");
    }
    let path = format!("/tenant/members/{}", id(&member));
    app.with_key(Method::PATCH, &path, &key, Some(json!({"role": "owner"}))).await.assert(403, "scope_escalation");
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE role = 'owner'").await, 1);
    // A `*` key of the owner may promote; a demotion gives nothing away, so the narrow key may.
    let full = token(&app.create_key(&oat, &["*"]).await, "raw_key");
    let r = app.with_key(Method::PATCH, &path, &full, Some(json!({"role": "admin"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.with_key(Method::PATCH, &path, &key, Some(json!({"role": "member"}))).await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("member")), "{}", r.body);
}

/// What each of a tenant's two owners does at the same moment.
#[derive(Clone, Copy, Debug)]
enum Race {
    DemoteEachOther,
    DeleteThemselves,
    RemoveEachOther,
    DemoteTheOtherAndLeave,
}

async fn act(app: &TestApp, race: Race, me: &serde_json::Value, other_id: &str, first: bool) -> Resp {
    let at = token(me, "access_token");
    let member_path = format!("/tenant/members/{other_id}");
    let leave = || async {
        app.send(app.client.delete(app.url("/users/me")).bearer_auth(&at).json(&json!({"current_password": PASSWORD})))
            .await
    };
    match (race, first) {
        (Race::DemoteEachOther, _) | (Race::DemoteTheOtherAndLeave, true) => {
            patch(app, &member_path, json!({"role": "member"}), &at).await
        }
        (Race::DeleteThemselves, _) | (Race::DemoteTheOtherAndLeave, false) => leave().await,
        (Race::RemoveEachOther, _) => delete(app, &member_path, &at).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_acting_on_each_other_at_once_never_leave_a_tenant_without_one() {
    let app = TestApp::spawn_with(&[("rate_limit_scale", "0")]).await;
    let races = [Race::DemoteEachOther, Race::DeleteThemselves, Race::RemoveEachOther, Race::DemoteTheOtherAndLeave];
    let mut pairs = Vec::new();
    for i in 0..16 {
        let a = app.register(&format!("a{i}@example.com")).await;
        let b = app.add_member(&a, &format!("b{i}@example.com"), "owner").await;
        pairs.push((races[i % races.len()], a, b));
    }
    // Both requests of every pair at once, all pairs together: real concurrency, no sleeps.
    let app = &app;
    let answers = join_all(pairs.iter().map(|(race, a, b)| async move {
        // In `DemoteTheOtherAndLeave` one owner does both: demotes the other and leaves.
        let (b_actor, b_other) = match race {
            Race::DemoteTheOtherAndLeave => (a, id(b)),
            _ => (b, id(a)),
        };
        let a_other = id(b);
        let (x, y) = tokio::join!(act(app, *race, a, &a_other, true), act(app, *race, b_actor, &b_other, false));
        (*race, x.status, y.status)
    }))
    .await;
    let ownerless = app
        .count(
            "SELECT COUNT(*) FROM tenants t WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.tenant_id = t.id AND u.role = 'owner')",
        )
        .await;
    assert_eq!(ownerless, 0, "tenants left without an owner; answers: {answers:?}");
    for (race, x, y) in &answers {
        assert!([*x, *y].iter().any(|s| *s == 200 || *s == 204), "{race:?}: neither succeeded ({x}, {y})");
        // The loser finds itself demoted (403 owner_required), signed out (401), its target gone
        // (404) or the last owner (409).
        assert!([*x, *y].iter().all(|s| [200, 204, 401, 403, 404, 409].contains(s)), "{race:?}: ({x}, {y})");
    }
}
