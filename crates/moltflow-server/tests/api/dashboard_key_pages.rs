//! The dashboard's key pages: a new key's secret shown exactly once, paging and filtering many
//! keys (a member through their own only), revoking with a confirmation and without script.

use crate::common::{TestApp, token};
use crate::dashboard_web::{Web, input_value, owner_and_member, table_cells, unescape};

/// The `mf_…` secrets in a page.
fn secrets(html: &str) -> Vec<String> {
    html.match_indices("mf_")
        .map(|(i, _)| html[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
        .filter(|s| s.len() >= 43)
        .collect()
}

#[tokio::test]
async fn a_new_keys_secret_appears_exactly_once() {
    let app = TestApp::spawn().await;
    app.register("owner@example.com").await;
    let web = Web::signed_in(&app, "owner@example.com").await;
    let form = web.get("/keys").await;
    let nonce = input_value(&form.html, "nonce").expect("a nonce");
    let fields =
        [("name", "outreach-bot"), ("preset", "messaging"), ("scope", "usage:write"), ("nonce", nonce.as_str())];
    let made = web.post("/keys", &fields).await;
    assert_eq!(made.status, 200, "{}", made.html);
    assert_eq!(made.headers["cache-control"], "no-store");
    let shown = secrets(&made.html);
    assert_eq!(shown.len(), 1, "the secret once on its page: {}", made.html);
    let secret = &shown[0];
    assert!(made.html.contains("shown only this once"));

    // It works against the API with the scopes picked (preset + ticked).
    let r = app.with_key(reqwest::Method::GET, "/usage/current", secret, None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Never again: not in the list, not when the same form is sent again (reload, back).
    let list = web.get("/keys").await;
    assert!(list.html.contains("outreach-bot") && !list.html.contains(secret.as_str()));
    assert!(secrets(&list.html).is_empty());
    let again = web.post("/keys", &fields).await;
    assert_eq!((again.status, again.location()), (303, "/keys?flash=key_shown"));
    assert!(!again.html.contains(secret.as_str()));
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys").await, 1, "no second key either");
    let after = web.get(again.location()).await;
    assert!(after.html.contains("shown once and cannot be shown again") && secrets(&after.html).is_empty());
}

/// `count` keys of the user `email`, named `client-00`, `client-01`, … (the higher, the newer),
/// with prefixes `mf_Live0000`, `mf_Live0001`, …;
/// every tenth (`client-00`, `client-10`, …) revoked.
async fn stored_keys(app: &TestApp, email: &str, count: usize) {
    for i in 0..count {
        let revoked = if i % 10 == 0 { "1" } else { "NULL" };
        app.store
            .execute_raw(&format!(
                "INSERT INTO api_keys (id, tenant_id, created_by, name, key_prefix, key_hash, scopes, created_at, \
                 revoked_at) SELECT '00000000-0000-7000-8000-{i:012}', tenant_id, id, 'client-{i:02}', \
                 'mf_Live{i:04}', 'hash-{i}', 'usage:read', {}, {revoked} FROM users WHERE email = '{email}'",
                1_700_000_000_000_i64 + i as i64
            ))
            .await
            .unwrap();
    }
}

/// The names in the keys table, top to bottom.
fn listed_keys(html: &str) -> Vec<String> {
    table_cells(html, "API keys").into_iter().skip(1).map(|row| row[0].clone()).collect()
}

/// The `href` of the link whose text is `text`.
fn link(html: &str, text: &str) -> Option<String> {
    let end = html.find(&format!(">{text}</a>"))?;
    let start = html[..end].rfind("href=\"")? + 6;
    Some(unescape(&html[start..start + html[start..].find('"')?]))
}

#[tokio::test]
async fn an_agency_with_many_keys_pages_through_them_and_filters_by_name_and_state() {
    let app = TestApp::spawn().await;
    app.register("owner@example.com").await;
    stored_keys(&app, "owner@example.com", 60).await;
    let web = Web::signed_in(&app, "owner@example.com").await;

    // Newest first, fifty to a page, then the rest; no key twice, none left out.
    let first = web.get("/keys").await;
    assert_eq!(first.status, 200, "{}", first.html);
    let names = listed_keys(&first.html);
    assert_eq!((names.len(), names[0].as_str(), names[49].as_str()), (50, "client-59", "client-10"));
    assert!(link(&first.html, "Newest keys").is_none());
    let older = link(&first.html, "Older keys").expect("a link to the older keys");
    let second = web.get(&older).await;
    assert_eq!(listed_keys(&second.html), (0..10).rev().map(|i| format!("client-{i:02}")).collect::<Vec<_>>());
    assert!(link(&second.html, "Older keys").is_none(), "the last page");
    assert_eq!(link(&second.html, "Newest keys").as_deref(), Some("/keys"));

    // A part of the name, in any case; the filter stays in the page links.
    let found = web.get("/keys?search=CLIENT-5").await;
    assert_eq!(listed_keys(&found.html).len(), 10, "client-50 … client-59");
    assert!(found.html.contains("value=\"CLIENT-5\""), "the search box keeps what was typed");
    // The prefix too (secrets mix cases; a search ignores case); and wildcards are taken as
    // typed, not as patterns.
    assert_eq!(listed_keys(&web.get("/keys?search=mf_LIVE0042").await.html), ["client-42"]);
    assert!(web.get("/keys?search=mf%5FLive0042").await.html.contains("client-42"));
    assert!(web.get("/keys?search=mf_Live_042").await.html.contains("No key matches."), "`_` is no wildcard");
    let none = web.get("/keys?search=%25").await;
    assert!(none.html.contains("No key matches.") && !none.html.contains(">API keys</caption>"), "{}", none.html);

    // Revoked ones alone, and paging within a filter keeps it.
    let inactive = web.get("/keys?state=inactive").await;
    assert_eq!(
        listed_keys(&inactive.html),
        ["client-50", "client-40", "client-30", "client-20", "client-10", "client-00"]
    );
    assert!(inactive.html.contains("<option value=\"inactive\" selected>"), "{}", inactive.html);
    let active = web.get("/keys?state=active").await;
    let more = link(&active.html, "Older keys").expect("54 active keys take two pages");
    assert!(more.starts_with("/keys?state=active&cursor="), "{more}");
    assert_eq!(listed_keys(&web.get(&more).await.html), ["client-04", "client-03", "client-02", "client-01"]);

    // A damaged link or an overlong search is said on the page, not a crash.
    let bad = web.get("/keys?cursor=not-a-cursor").await;
    assert_eq!(bad.status, 422, "{}", bad.html);
    assert!(bad.html.contains("Invalid cursor") && bad.html.contains("Start from the newest keys"));
    let long = web.get(&format!("/keys?search={}", "x".repeat(101))).await;
    assert_eq!(long.status, 422);
    assert!(long.html.contains("id=\"f-search-error\""), "{}", long.html);
}

#[tokio::test]
async fn a_member_pages_only_through_their_own_keys() {
    let app = TestApp::spawn().await;
    let (_, _) = owner_and_member(&app).await;
    stored_keys(&app, "owner@example.com", 3).await;
    let member = Web::signed_in(&app, "member@example.com").await;
    let page = member.get("/keys?search=client").await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("No key matches."), "the owner's keys are not the member's: {}", page.html);
}

#[tokio::test]
async fn revoking_a_key_takes_a_confirmation_and_works_without_script() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let key = app.create_key(&token(&owner, "access_token"), &["usage:read"]).await;
    let id = key["id"].as_str().unwrap();
    let web = Web::signed_in(&app, "owner@example.com").await;
    let list = web.get("/keys").await;
    assert!(list.html.contains(&format!("href=\"/keys/{id}/revoke\"")), "{}", list.html);
    let confirm = web.get(&format!("/keys/{id}/revoke")).await;
    assert!(confirm.html.contains(&format!("action=\"/keys/{id}/revoke\"")));
    let r = web.post(&format!("/keys/{id}/revoke"), &[]).await;
    assert_eq!((r.status, r.location()), (303, "/keys?flash=key_revoked"));
    let r = app.with_key(reqwest::Method::GET, "/usage/current", key["raw_key"].as_str().unwrap(), None).await;
    assert_eq!(r.status, 401);
}
