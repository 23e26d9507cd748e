//! The tenant pages of the dashboard over real HTTP, signed in through the sign-in form with the
//! cookie and CSRF token a browser would hold (`dashboard_web.rs`): authorization is the API's (a
//! member sees no button that would be refused, and a forged POST is refused), the CSV holds
//! exactly the table shown, a bad number is said beside the field and nothing is saved. The key
//! pages are in `dashboard_key_pages.rs`.

use serde_json::json;

use crate::common::{TestApp, token};
use crate::dashboard_web::{Web, csv_cells, owner_and_member, table_cells};

#[tokio::test]
async fn a_member_sees_read_only_pages_without_the_buttons_that_would_be_refused() {
    let app = TestApp::spawn().await;
    let (owner, _) = owner_and_member(&app).await;
    let access = token(&owner, "access_token");
    let r =
        app.post("/tenant/invitations", json!({"email": "guest@example.com", "role": "member"}), Some(&access)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let web = Web::signed_in(&app, "member@example.com").await;

    let members = web.get("/members").await;
    assert_eq!(members.status, 200);
    assert!(members.html.contains("guest@example.com"), "pending invitations are listed");
    for refused in ["/members/invite", "/revoke", "/remove", "/role\""] {
        assert!(!members.html.contains(refused), "a member sees no {refused}: {}", members.html);
    }
    let settings = web.get("/settings").await;
    assert!(!settings.html.contains("action=\"/settings\""), "no settings form: {}", settings.html);
    assert!(!settings.html.contains("action=\"/settings/ai-consent\""));
    assert!(settings.html.contains("an owner or admin of your workspace can change it"));
    let billing = web.get("/billing").await;
    assert!(!billing.html.contains("action=\"/billing/upgrade\""), "no upgrade buttons: {}", billing.html);
    assert!(!billing.html.contains("/billing/cancel"));
    let audit = web.get("/audit").await;
    assert!(audit.html.contains("Only owners and admins"), "{}", audit.html);

    // The forms they cannot see are refused when forged, and change nothing.
    let r = web.post("/members/invite", &[("email", "sneaky@example.com"), ("role", "member")]).await;
    assert_eq!(r.status, 403, "{}", r.html);
    let r = web.post("/settings", &[("allowed_numbers", "+5511999999999")]).await;
    assert_eq!(r.status, 403);
    let r = web.post("/billing/upgrade", &[("plan_id", "pro"), ("billing_cycle", "monthly")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM invitations WHERE email = 'sneaky@example.com'").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM checkout_sessions").await, 0);
    let s = app.get("/tenant/settings", Some(&access)).await;
    assert_eq!(s.body["allowed_numbers"], json!([]));
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let app = TestApp::spawn().await;
    app.register("owner@example.com").await;
    let web = Web::signed_in(&app, "owner@example.com").await;
    *web.csrf.lock().unwrap() = "forged".into();
    let r = web.post("/keys", &[("name", "bot"), ("preset", "messaging")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM api_keys").await, 0);
}

#[tokio::test]
async fn the_usage_csv_holds_exactly_the_table_shown() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let key = app.create_key(&token(&owner, "access_token"), &["usage:write"]).await;
    let raw = key["raw_key"].as_str().unwrap();
    let events = json!({"events": [
        {"id": "e1", "metric": "messages", "quantity": 3, "session_id": "wa-sales"},
        {"id": "e2", "metric": "messages", "quantity": 2, "session_id": "wa-help"},
        {"id": "e3", "metric": "messages", "quantity": 4},
        {"id": "e4", "metric": "ai_replies", "quantity": 1}
    ]});
    let r = app.with_key(reqwest::Method::POST, "/usage/events", raw, Some(events)).await;
    assert_eq!(r.status, 202, "{}", r.body);

    let web = Web::signed_in(&app, "owner@example.com").await;
    let page = web.get("/usage").await;
    assert_eq!(page.status, 200, "{}", page.html);
    let month = moltflow_core::period::Month::of_ms(app.state.clock.now_ms()).to_string();
    let shown = table_cells(&page.html, &format!("Usage per day and WhatsApp session, {month}"));
    assert_eq!(
        shown[0],
        ["Date", "Messages: wa-help", "Messages: wa-sales", "Messages: No session", "Messages", "AI replies"]
    );
    assert_eq!(shown.last().unwrap(), &["Total", "2", "3", "4", "9", "1"]);
    let csv = web.get(&format!("/usage/daily.csv?month={month}")).await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(csv_cells(&csv.html), shown, "the CSV is the table");
    // The chart shows them too: its description says the total.
    assert!(page.html.contains("role=\"img\"") && page.html.contains("9 messages"), "{}", page.html);

    let history = table_cells(&page.html, "Usage per month");
    let csv = web.get("/usage/history.csv").await;
    assert_eq!(csv_cells(&csv.html), history);
    assert_eq!(history[1], [month.as_str(), "9", "1"]);
}

#[tokio::test]
async fn a_bad_month_is_said_beside_the_picker() {
    let app = TestApp::spawn().await;
    app.register("owner@example.com").await;
    let web = Web::signed_in(&app, "owner@example.com").await;
    let page = web.get("/usage?month=2026-13").await;
    assert_eq!(page.status, 422);
    assert!(page.html.contains("id=\"f-month-error\">Input should be a month as YYYY-MM."), "{}", page.html);
    assert!(page.html.contains("value=\"2026-13\""), "the picker keeps what was typed");
}

#[tokio::test]
async fn a_bad_number_is_shown_beside_the_field_and_nothing_is_saved() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let access = token(&owner, "access_token");
    let web = Web::signed_in(&app, "owner@example.com").await;
    web.get("/settings").await;
    let typed = "+5511999999999\n12345";
    let r = web.post("/settings", &[("allowed_numbers", typed), ("require_approval", "on")]).await;
    assert_eq!(r.status, 422, "{}", r.html);
    let error_at = r.html.find("id=\"f-allowed_numbers-error\"").expect("an error beside the field");
    assert!(r.html[error_at..].contains("Line 2: &quot;12345&quot; is not an E.164 number"), "{}", r.html);
    assert!(r.html.contains(">+5511999999999\n12345</textarea>"), "the text is kept: {}", r.html);
    assert!(r.html.contains("aria-invalid=\"true\""));
    let s = app.get("/tenant/settings", Some(&access)).await;
    assert_eq!((s.body["allowed_numbers"].clone(), s.body["require_approval"].clone()), (json!([]), json!(false)));

    let r =
        web.post("/settings", &[("allowed_numbers", "+5511999999999\n+14155550123"), ("require_approval", "on")]).await;
    assert_eq!((r.status, r.location()), (303, "/settings?flash=settings_saved"));
    let s = app.get("/tenant/settings", Some(&access)).await;
    assert_eq!(s.body["allowed_numbers"], json!(["+5511999999999", "+14155550123"]));
    assert_eq!(s.body["require_approval"], json!(true));
}

#[tokio::test]
async fn ai_consent_records_who_when_ip_and_browser() {
    let app = TestApp::spawn().await;
    app.register("owner@example.com").await;
    let web = Web::signed_in(&app, "owner@example.com").await;
    web.get("/settings").await;
    let r = web.post("/settings/ai-consent", &[("granted", "true")]).await;
    assert_eq!(r.status, 303);
    let page = web.get("/settings").await;
    assert!(page.html.contains("Withdraw consent") && page.html.contains("Granted"), "{}", page.html);
    assert!(page.html.contains("127.0.0.1"), "the IP is in the history");
    assert_eq!(app.count("SELECT COUNT(*) FROM consent_records WHERE granted = TRUE").await, 1);
}

#[tokio::test]
async fn the_overview_has_a_meter_per_quota_the_chart_and_the_pace() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let key = app.create_key(&token(&owner, "access_token"), &["usage:write"]).await;
    let events = json!({"events": [{"id": "a", "metric": "messages", "quantity": 60}]});
    app.with_key(reqwest::Method::POST, "/usage/events", key["raw_key"].as_str().unwrap(), Some(events)).await;
    let web = Web::signed_in(&app, "owner@example.com").await;
    let page = web.get("/").await;
    assert_eq!(page.html.matches("<meter").count(), 4, "ai replies are not included on free: {}", page.html);
    assert!(page.html.contains("60 of 50 this month"), "{}", page.html);
    assert!(page.html.contains("the limit is reached until"), "{}", page.html);
    assert!(page.html.contains("href=\"/billing\">Upgrade your plan"), "{}", page.html);
    assert!(page.html.contains("role=\"img\""));
}

#[tokio::test]
async fn an_owner_upgrades_through_the_local_checkout_and_sees_the_new_limits() {
    let app = TestApp::spawn().await;
    app.register("owner@example.com").await;
    let web = Web::signed_in(&app, "owner@example.com").await;
    web.get("/billing").await;
    let r = web.post("/billing/upgrade", &[("plan_id", "starter"), ("billing_cycle", "monthly")]).await;
    assert_eq!(r.status, 303, "{}", r.html);
    let checkout = r.location().to_owned();
    assert!(checkout.contains("/billing/local/checkout/"), "{checkout}");
    let paid = web.client.post(&checkout).send().await.expect("pay");
    assert_eq!(paid.status(), 200);
    let page = web.get("/billing").await;
    assert!(page.html.contains("<strong>Starter</strong>"), "{}", page.html);
    let overview = web.get("/").await;
    assert!(overview.html.contains("0 of 1,000 this month"), "{}", overview.html);
}

#[tokio::test]
async fn the_audit_log_filters_by_action_and_its_csv_is_the_page() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    app.create_key(&token(&owner, "access_token"), &["usage:read"]).await;
    let web = Web::signed_in(&app, "owner@example.com").await;
    let page = web.get("/audit?action=api_key.created").await;
    let shown = table_cells(&page.html, "Audit log entries, newest first");
    assert_eq!(shown.len(), 2, "the header and one entry: {shown:?}");
    assert_eq!(shown[1][1], "api_key.created");
    let csv = web.get("/audit.csv?action=api_key.created").await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(csv.html.starts_with("Time,Action,Actor,Target,IP,User agent,Details\r\n"), "{}", csv.html);
    assert!(csv.html.contains(",api_key.created,"));
}

#[tokio::test]
async fn members_are_invited_changed_and_removed_by_an_owner() {
    let app = TestApp::spawn().await;
    let (_, member) = owner_and_member(&app).await;
    let member_id = member["user"]["id"].as_str().unwrap().to_owned();
    let web = Web::signed_in(&app, "owner@example.com").await;
    web.get("/members").await;
    let r = web.post("/members/invite", &[("email", "not-an-email"), ("role", "member")]).await;
    assert_eq!(r.status, 422, "{}", r.html);
    assert!(r.html.contains("id=\"f-email-error\""), "{}", r.html);
    assert!(r.html.contains("value=\"not-an-email\""));
    let r = web.post("/members/invite", &[("email", "new@example.com"), ("role", "admin")]).await;
    assert_eq!((r.status, r.location()), (303, "/members?flash=invited"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM invitations WHERE email = 'new@example.com' AND role = 'admin'").await,
        1
    );

    let r = web.post(&format!("/members/{member_id}/role"), &[("role", "admin")]).await;
    assert_eq!(r.status, 303);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM users WHERE id = '{member_id}' AND role = 'admin'")).await, 1);
    let confirm = web.get(&format!("/members/{member_id}/remove")).await;
    assert!(confirm.html.contains(&format!("action=\"/members/{member_id}/remove\"")));
    let r = web.post(&format!("/members/{member_id}/remove"), &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM users WHERE id = '{member_id}'")).await, 0);
}

#[tokio::test]
async fn a_formula_in_an_audited_value_is_text_in_the_csv_and_unchanged_on_the_page() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner@example.com").await;
    let access = token(&owner, "access_token");
    // The user agent is whatever the client sends, and the audit log keeps it as sent.
    let sent = ["=HYPERLINK(\"http://evil.example\",\"x\")", "-2+3", "@SUM(A1)"];
    for agent in sent {
        let r = app
            .client
            .post(app.url("/api-keys"))
            .bearer_auth(&access)
            .header("user-agent", agent)
            .json(&json!({"name": "bot", "scopes": ["usage:read"]}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 201);
    }
    // A header reaches the server trimmed and in ASCII, so leading spaces and a full-width `＝`
    // reach the log another way (another version's rows, an import); the CSV must not count on
    // their absence.
    let tenant = owner["user"]["tenant_id"].as_str().unwrap();
    let stored = ["  =HYPERLINK(\"http://evil.example/2\",\"y\")", "＝1+1"];
    for (i, agent) in stored.iter().enumerate() {
        let row = "INSERT INTO audit_logs (id, tenant_id, at, actor_type, action, user_agent, details) \
                   VALUES ($1, $2, 1700000000000, 'user', 'api_key.created', $3, '{}')";
        assert_eq!(app.exec(row, &[&format!("zz-stored-{i}"), tenant, agent]).await, 1);
    }
    let formulas = [sent.as_slice(), stored.as_slice()].concat();
    let web = Web::signed_in(&app, "owner@example.com").await;
    let page = web.get("/audit?action=api_key.created").await;
    let shown = table_cells(&page.html, "Audit log entries, newest first");
    let agents: Vec<&str> = shown[1..].iter().map(|row| row[5].as_str()).collect();
    assert_eq!(agents.len(), formulas.len(), "{shown:?}");
    for agent in formulas {
        assert!(agents.contains(&agent.trim()), "the page shows {agent:?} as sent: {agents:?}");
    }

    let csv = web.get("/audit.csv?action=api_key.created").await;
    assert_eq!(csv.status, 200);
    for written in [
        "\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\"",
        "\"'  =HYPERLINK(\"\"http://evil.example/2\"\",\"\"y\"\")\"",
        "\"'＝1+1\"",
        "\"'-2+3\"",
        "\"'@SUM(A1)\"",
    ] {
        assert!(csv.html.contains(&format!(",{written},")), "{written} in {}", csv.html);
    }
}
