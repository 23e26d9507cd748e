use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, app_with_owner, token};

async fn patch(app: &TestApp, path: &str, body: Value, bearer: &str) -> crate::common::Resp {
    app.send(app.client.patch(app.url(path)).bearer_auth(bearer).json(&body)).await
}

#[tokio::test]
async fn settings_start_empty_and_update_partially() {
    let (app, _, at) = app_with_owner().await;
    let r = app.get("/tenant/settings", Some(&at)).await;
    assert_eq!(
        r.body,
        json!({"allowed_numbers": [], "require_approval": false, "ai_consent_enabled": false, "chat_history_access_enabled": false})
    );
    let r = patch(
        &app,
        "/tenant/settings",
        json!({"allowed_numbers": ["+5511999999999", "+14155550123", "+5511999999999"]}),
        &at,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["allowed_numbers"], json!(["+5511999999999", "+14155550123"]));
    let r = patch(&app, "/tenant/settings", json!({"require_approval": true}), &at).await;
    assert_eq!(r.body["allowed_numbers"], json!(["+5511999999999", "+14155550123"]), "untouched fields kept");
    assert_eq!(r.body["require_approval"], true);
    assert_eq!(app.get("/tenant/settings", Some(&at)).await.body, r.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'settings.updated'").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM consent_records").await, 0, "no consent without ai_consent_enabled");
}

#[tokio::test]
async fn every_patch_carrying_ai_consent_appends_a_record() {
    let (app, owner, at) = app_with_owner().await;
    let req = |body: Value| {
        app.client
            .patch(app.url("/tenant/settings"))
            .bearer_auth(&at)
            .header("user-agent", "compliance-test/1.0")
            .json(&body)
    };
    assert_eq!(app.send(req(json!({"ai_consent_enabled": true}))).await.status, 200);
    assert_eq!(app.send(req(json!({"ai_consent_enabled": true}))).await.status, 200);
    assert_eq!(app.send(req(json!({"ai_consent_enabled": false, "require_approval": true}))).await.status, 200);
    let consents = app.get("/tenant/consents", Some(&at)).await;
    assert_eq!(consents.status, 200);
    let list = consents.body.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["granted"], false, "newest first");
    for c in list {
        assert_eq!(c["consent_type"], "ai_processing");
        assert_eq!(c["version"], "1.0");
        assert_eq!(c["user_id"], owner["user"]["id"]);
        assert_eq!(c["ip"], "127.0.0.1");
        assert_eq!(c["user_agent"], "compliance-test/1.0");
        assert!(c["created_at"].is_string());
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'consent.recorded'").await, 3);
}

#[tokio::test]
async fn consent_records_cannot_be_changed_even_in_sql() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    patch(&app, "/tenant/settings", json!({"ai_consent_enabled": true}), &token(&owner, "access_token")).await;
    assert!(app.store.execute_raw("UPDATE consent_records SET granted = FALSE").await.is_err());
    assert!(app.store.execute_raw("DELETE FROM consent_records").await.is_err());
    assert_eq!(app.count("SELECT COUNT(*) FROM consent_records WHERE granted = TRUE").await, 1);
}

#[tokio::test]
async fn bad_settings_are_refused_and_change_nothing() {
    let (app, _, at) = app_with_owner().await;
    let too_many: Vec<String> = (0..501).map(|i| format!("+1415555{i:04}")).collect();
    let cases = [
        json!({"allowed_numbers": ["5511999999999"]}),
        json!({"allowed_numbers": ["+55119999abcd"]}),
        json!({"allowed_numbers": ["+1234567"]}),
        json!({"allowed_numbers": ["+1234567890123456"]}),
        json!({"allowed_numbers": too_many}),
        json!({"allowed_numbers": "+5511999999999"}),
        json!({"allowed_numbers": [5511999999999u64]}),
        json!({"require_approval": "yes"}),
        json!({"ai_consent_enabled": 1}),
        json!({"colour": "blue"}),
    ];
    for body in cases {
        let r = patch(&app, "/tenant/settings", body.clone(), &at).await;
        r.assert(422, "validation_error");
    }
    let r = patch(&app, "/tenant/settings", json!({"allowed_numbers": ["+5511999999999", "nope"]}), &at).await;
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "allowed_numbers", 1]));
    // 500 distinct numbers, sent with duplicates, are fine.
    let mut five_hundred: Vec<String> = (0..500).map(|i| format!("+1415555{i:04}")).collect();
    five_hundred.push("+14155550000".into());
    assert_eq!(patch(&app, "/tenant/settings", json!({"allowed_numbers": five_hundred}), &at).await.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM consent_records").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'settings.updated'").await, 1);
}

#[tokio::test]
async fn only_owners_admins_and_settings_keys_write_settings() {
    let (app, owner, oat) = app_with_owner().await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let mat = token(&member, "access_token");
    // Anyone in the tenant reads.
    assert_eq!(app.get("/tenant/settings", Some(&mat)).await.status, 200);
    let r = patch(&app, "/tenant/settings", json!({"require_approval": true}), &mat).await;
    r.assert(403, "insufficient_scope");
    assert_eq!(
        patch(&app, "/tenant/settings", json!({"require_approval": true}), &token(&admin, "access_token")).await.status,
        200
    );
    let reader = token(&app.create_key(&oat, &["settings:read"]).await, "raw_key");
    let r = app.with_key(Method::PATCH, "/tenant/settings", &reader, Some(json!({"require_approval": false}))).await;
    r.assert(403, "insufficient_scope");
    assert_eq!(app.with_key(Method::GET, "/tenant/settings", &reader, None).await.body["require_approval"], true);
    let writer = token(&app.create_key(&oat, &["settings:manage"]).await, "raw_key");
    let r = app.with_key(Method::PATCH, "/tenant/settings", &writer, Some(json!({"ai_consent_enabled": true}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The consent names the key's creator.
    assert_eq!(
        app.count_with(
            "SELECT COUNT(*) FROM consent_records WHERE user_id = $1",
            &[owner["user"]["id"].as_str().unwrap()]
        )
        .await,
        1
    );
    // Members may not read consents.
    app.get("/tenant/consents", Some(&mat)).await.assert(403, "insufficient_scope");
}

#[tokio::test]
async fn settings_are_per_tenant() {
    let app = TestApp::spawn().await;
    let a = app.register("a@example.com").await;
    let b = app.register("b@example.com").await;
    patch(
        &app,
        "/tenant/settings",
        json!({"allowed_numbers": ["+5511999999999"], "ai_consent_enabled": true}),
        &token(&a, "access_token"),
    )
    .await;
    let theirs = app.get("/tenant/settings", Some(&token(&b, "access_token"))).await.body;
    assert_eq!(theirs["allowed_numbers"], json!([]));
    assert!(app.get("/tenant/consents", Some(&token(&b, "access_token"))).await.body.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn client_ip_comes_from_trusted_proxies_only() {
    let app = TestApp::spawn_with(&[("trusted_proxies", "127.0.0.1/32")]).await;
    let owner = app.register("owner@example.com").await;
    let at = token(&owner, "access_token");
    let req = app
        .client
        .patch(app.url("/tenant/settings"))
        .bearer_auth(&at)
        .header("x-forwarded-for", "198.51.100.9, 127.0.0.1")
        .json(&json!({"ai_consent_enabled": true}));
    assert_eq!(app.send(req).await.status, 200);
    assert_eq!(app.get("/tenant/consents", Some(&at)).await.body[0]["ip"], "198.51.100.9");

    let untrusted = TestApp::spawn().await;
    let owner = untrusted.register("owner@example.com").await;
    let at = token(&owner, "access_token");
    let req = untrusted
        .client
        .patch(untrusted.url("/tenant/settings"))
        .bearer_auth(&at)
        .header("x-forwarded-for", "198.51.100.9")
        .json(&json!({"ai_consent_enabled": true}));
    untrusted.send(req).await;
    assert_eq!(untrusted.get("/tenant/consents", Some(&at)).await.body[0]["ip"], "127.0.0.1");
}

#[tokio::test]
async fn members_are_listed_and_roles_follow_the_rules() {
    let (app, owner, oat) = app_with_owner().await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let aat = token(&admin, "access_token");
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let mat = token(&member, "access_token");
    let list = app.get("/tenant/members", Some(&mat)).await;
    assert_eq!(list.status, 200);
    let emails: Vec<&str> = list.body.as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["owner@example.com", "admin@example.com", "member@example.com"]);

    let member_id = member["user"]["id"].as_str().unwrap();
    let admin_id = admin["user"]["id"].as_str().unwrap();
    let owner_id = owner["user"]["id"].as_str().unwrap();
    // Members manage nobody.
    patch(&app, &format!("/tenant/members/{admin_id}"), json!({"role": "member"}), &mat)
        .await
        .assert(403, "insufficient_scope");
    // Admins cannot grant admin or owner, nor touch an owner.
    patch(&app, &format!("/tenant/members/{member_id}"), json!({"role": "admin"}), &aat)
        .await
        .assert(403, "owner_required");
    patch(&app, &format!("/tenant/members/{member_id}"), json!({"role": "owner"}), &aat)
        .await
        .assert(403, "owner_required");
    patch(&app, &format!("/tenant/members/{owner_id}"), json!({"role": "member"}), &aat)
        .await
        .assert(403, "owner_required");
    // The last owner cannot demote themself.
    patch(&app, &format!("/tenant/members/{owner_id}"), json!({"role": "admin"}), &oat).await.assert(409, "last_owner");
    // The owner promotes; the new role takes effect on the next requests.
    let r = patch(&app, &format!("/tenant/members/{member_id}"), json!({"role": "admin"}), &oat).await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("admin")));
    assert_eq!(patch(&app, "/tenant/settings", json!({"require_approval": true}), &mat).await.status, 200);
    // With two owners, one may step down.
    patch(&app, &format!("/tenant/members/{admin_id}"), json!({"role": "owner"}), &oat).await;
    assert_eq!(patch(&app, &format!("/tenant/members/{owner_id}"), json!({"role": "member"}), &oat).await.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'member.role_changed'").await, 3);
}

#[tokio::test]
async fn bad_role_changes_change_nothing() {
    let (app, owner, oat) = app_with_owner().await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let other = app.register("other@example.com").await;
    let mid = member["user"]["id"].as_str().unwrap();
    patch(&app, &format!("/tenant/members/{mid}"), json!({"role": "superuser"}), &oat)
        .await
        .assert(422, "validation_error");
    patch(&app, &format!("/tenant/members/{mid}"), json!({"role": 1}), &oat).await.assert(422, "validation_error");
    patch(&app, &format!("/tenant/members/{mid}"), json!({}), &oat).await.assert(422, "validation_error");
    let other_id = other["user"]["id"].as_str().unwrap();
    patch(&app, &format!("/tenant/members/{other_id}"), json!({"role": "member"}), &oat).await.assert(404, "not_found");
    patch(&app, "/tenant/members/garbage", json!({"role": "member"}), &oat).await.assert(404, "not_found");
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE role = 'owner'").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action LIKE 'member.%'").await, 0);
}

#[tokio::test]
async fn removing_a_member_kills_their_sessions_and_keys_at_once() {
    let (app, owner, oat) = app_with_owner().await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let mat = token(&member, "access_token");
    let key = token(&app.create_key(&mat, &["account:read"]).await, "raw_key");
    assert_eq!(app.get("/auth/me", Some(&mat)).await.status, 200);
    assert_eq!(app.with_key(Method::GET, "/auth/me", &key, None).await.status, 200);
    let mid = member["user"]["id"].as_str().unwrap();
    let r = app.send(app.client.delete(app.url(&format!("/tenant/members/{mid}"))).bearer_auth(&oat)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    app.get("/auth/me", Some(&mat)).await.assert(401, "invalid_token");
    app.with_key(Method::GET, "/auth/me", &key, None).await.assert(401, "invalid_api_key");
    assert_eq!(app.count_with("SELECT COUNT(*) FROM users WHERE id = $1", &[mid]).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'member.removed'").await, 1);
    // The last owner cannot be removed, not even by themself.
    let oid = owner["user"]["id"].as_str().unwrap();
    app.send(app.client.delete(app.url(&format!("/tenant/members/{oid}"))).bearer_auth(&oat))
        .await
        .assert(409, "last_owner");
}

#[tokio::test]
async fn the_audit_log_pages_newest_first_and_filters() {
    let (app, owner, at) = app_with_owner().await;
    for _ in 0..3 {
        app.login("owner@example.com", "wrong-password-1").await;
    }
    app.flush_audit().await;
    for i in 0..4 {
        patch(&app, "/tenant/settings", json!({"require_approval": i % 2 == 0}), &at).await;
    }
    let page = app.get("/audit-logs?limit=3", Some(&at)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["action"], "settings.updated");
    assert_eq!(items[0]["actor"], json!({"type": "user", "id": owner["user"]["id"]}));
    assert_eq!(items[0]["ip"], "127.0.0.1");
    let mut seen: Vec<Value> = items.iter().map(|e| e["id"].clone()).collect();
    let mut cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let next = app.get(&format!("/audit-logs?limit=3&cursor={cursor}"), Some(&at)).await.body;
        seen.extend(next["items"].as_array().unwrap().iter().map(|e| e["id"].clone()));
        match next["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    // registered + 3 failed logins + 4 settings updates
    assert_eq!(seen.len(), 8);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.as_str().cmp(&a.as_str()));
    assert_eq!(seen, sorted, "newest first, no repeats");
    let failed = app.get("/audit-logs?action=login.failed", Some(&at)).await.body;
    assert_eq!(failed["items"].as_array().unwrap().len(), 3);
    assert_eq!(failed["items"][0]["actor"]["type"], "anonymous");
    assert!(!failed.to_string().contains("wrong-password-1"), "no secrets in the log");
}

#[tokio::test]
async fn the_audit_log_refuses_bad_queries_and_other_roles() {
    let (app, owner, at) = app_with_owner().await;
    app.get("/audit-logs?cursor=garbage!!", Some(&at)).await.assert(422, "validation_error");
    app.get("/audit-logs?cursor=bm90LWEtdXVpZA", Some(&at)).await.assert(422, "validation_error");
    for bad in ["0", "201", "-5", "ten"] {
        let r = app.get(&format!("/audit-logs?limit={bad}"), Some(&at)).await;
        r.assert(422, "validation_error");
        assert_eq!(r.body["detail"][0]["loc"], json!(["query", "limit"]));
    }
    let member = app.add_member(&owner, "member@example.com", "member").await;
    app.get("/audit-logs", Some(&token(&member, "access_token"))).await.assert(403, "insufficient_scope");
    let other = app.register("other@example.com").await;
    let theirs = app.get("/audit-logs", Some(&token(&other, "access_token"))).await.body;
    assert!(theirs["items"].as_array().unwrap().iter().all(|e| e["actor"]["id"] == other["user"]["id"]));
}
