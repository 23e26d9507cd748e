//! The dashboard's pages: security headers, CSRF refusals, errors beside their fields, the mailed
//! links, and the profile.

use crate::common::{PASSWORD, TestApp, token};
use crate::dashboard_browser::Browser;

const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

#[tokio::test]
async fn every_page_sends_the_security_headers_and_assets_are_immutable() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let mut pages = vec!["/", "/sign-in", "/register", "/forgot-password", "/docs", "/reset-password?token=x"];
    for path in pages.drain(..) {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(page.header("content-security-policy"), Some(CSP), "{path}");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(page.header("referrer-policy"), Some("same-origin"), "{path}");
        assert_eq!(page.header("cache-control"), Some("no-store"), "{path}");
        assert!(page.body.starts_with("<!DOCTYPE html><html lang=\"en\">"), "{path}");
        assert!(!page.body.contains("style=") && !page.body.contains("<script>"), "inline style or script on {path}");
        assert!(!page.body.contains("src=\"http") && !page.body.contains("href=\"http"), "another origin on {path}");
    }
    browser.register("headers@example.com").await;
    for path in ["/", "/keys", "/usage", "/members", "/settings", "/billing", "/audit", "/profile"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(page.header("content-security-policy"), Some(CSP), "{path}");
        assert!(page.body.contains("aria-current=\"page\""), "the nav marks {path}");
    }

    let page = browser.get("/").await;
    let css = page.body.split("href=\"/assets/style.").nth(1).and_then(|s| s.split('"').next()).expect("stylesheet");
    let asset = browser.get(&format!("/assets/style.{css}")).await;
    assert_eq!(asset.status, 200);
    assert_eq!(asset.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(asset.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(browser.get("/assets/style.0000000000.css").await.status, 404, "an old name is gone");
    // The API keeps its own answers.
    assert_eq!(browser.get("/healthz").await.status, 200);
    assert!(browser.get("/openapi.json").await.body.starts_with('{'));
}

#[tokio::test]
async fn a_browser_at_a_wrong_address_gets_a_page_and_api_clients_keep_their_json() {
    let app = TestApp::spawn().await;
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let at = |path: &str| format!("{}{path}", app.base);
    let get = |path: &str, accept: &str| app.client.get(at(path)).header("accept", accept.to_owned()).send();
    let page = get("/setings", html).await.unwrap();
    assert_eq!(page.status(), 404);
    assert_eq!(page.headers()["content-security-policy"], CSP);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let body = page.text().await.unwrap();
    assert!(body.starts_with("<!DOCTYPE html>") && body.contains("There is no page at this address."), "{body}");
    assert!(body.contains("href=\"/\""), "a way back: {body}");
    let wrong_method = app.client.delete(at("/sign-in")).header("accept", html).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(wrong_method.text().await.unwrap().contains("This page cannot be used that way."));
    // The API answers JSON, to a browser too, and to any client outside the dashboard.
    for (path, accept) in [("/api/v2/nope", html), ("/setings", "application/json"), ("/setings", "*/*")] {
        let r = get(path, accept).await.unwrap();
        assert_eq!(r.status(), 404, "{path} {accept}");
        let body: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("{path} {accept}: {e}"));
        assert_eq!(body["code"], "not_found", "{path} {accept}");
    }
}

#[tokio::test]
async fn a_form_without_its_csrf_token_or_from_another_origin_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let fields = [("email", "csrf@example.com"), ("full_name", "Csrf"), ("password", PASSWORD)];
    browser.get("/register").await;
    let page = browser.post("/register", &fields).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("Form refused"), "{}", page.body);
    let mut wrong = vec![("csrf", "0".repeat(64))];
    wrong.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(browser.post("/register", &wrong).await.status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0, "nothing was created");

    browser.register("csrf@example.com").await;
    let token = browser.get("/profile").await.csrf();
    // Signed in: no token, another browser's token, or the right token from another origin.
    assert_eq!(browser.post("/profile", &[("full_name", "Mallory")]).await.status, 403);
    let mut other = Browser::new(&app);
    other.register("other@example.com").await;
    let other_token = other.get("/profile").await.csrf();
    assert_ne!(other_token, token);
    let page = browser
        .post("/profile", &[("csrf", &other_token), ("full_name", "Mallory"), ("timezone", "UTC"), ("locale", "en")])
        .await;
    assert_eq!(page.status, 403);
    let cross = reqwest::Client::new()
        .post(format!("{}/profile", app.base))
        .header("origin", "https://evil.example")
        .header("cookie", format!("mf_session={}", browser.cookies["mf_session"]))
        .form(&[("csrf", token.as_str()), ("full_name", "Mallory"), ("timezone", "UTC"), ("locale", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE full_name = 'Mallory'").await, 0);
    // Signing out needs the token too.
    assert_eq!(browser.post("/sign-out", &[]).await.status, 403);
    assert!(browser.signed_in().await);
}

#[tokio::test]
async fn errors_appear_beside_their_fields_and_the_form_keeps_what_was_typed_but_never_a_password() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let page = browser
        .submit(
            "/register",
            "/register",
            &[("email", "not-an-email"), ("full_name", "Typed Name"), ("password", "short")],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.field_error("email").is_some_and(|m| m.contains("email")), "{}", page.body);
    assert_eq!(page.input_value("full_name").as_deref(), Some("Typed Name"));
    assert_eq!(page.input_value("email").as_deref(), Some("not-an-email"));
    assert_eq!(page.input_value("password").as_deref(), Some(""), "a password is never echoed");
    assert!(page.body.contains("aria-invalid=\"true\""));
    let page = browser
        .submit(
            "/register",
            "/register",
            &[("email", "fine@example.com"), ("full_name", "Typed Name"), ("password", "short")],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.field_error("password").is_some_and(|m| m.contains('8')), "{}", page.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0, "nothing was created");

    app.register("taken@example.com").await;
    let page = browser
        .submit(
            "/register",
            "/register",
            &[("email", "taken@example.com"), ("full_name", "Again"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 409);
    assert!(page.field_error("email").is_some_and(|m| m.contains("already exists")), "{}", page.body);

    let page = browser.sign_in("taken@example.com", "wrong-password-123").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Incorrect email or password"));
    assert_eq!(page.input_value("email").as_deref(), Some("taken@example.com"));
    assert!(!page.body.contains("wrong-password-123"));
}

#[tokio::test]
async fn too_many_sign_ins_say_when_to_retry() {
    let app = TestApp::spawn().await;
    app.register("locked@example.com").await;
    let mut browser = Browser::new(&app);
    let mut last = None;
    for _ in 0..6 {
        last = Some(browser.sign_in("locked@example.com", "wrong-password-123").await);
    }
    let page = last.unwrap();
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.body.contains("Try again in"), "{}", page.body);
}

#[tokio::test]
async fn signed_in_page_views_share_the_users_rate_with_its_api_calls_and_past_it_get_a_429_page() {
    let app = TestApp::spawn_with(&[("rate_limits", "free=5")]).await;
    let mut browser = Browser::new(&app);
    browser.register("busy@example.com").await;
    let csrf = browser.get("/profile").await.csrf();
    let mut served = 1;
    let refused = loop {
        let page = browser.get("/profile").await;
        if page.status != 200 {
            break page;
        }
        assert_eq!(page.header("ratelimit-limit"), Some("5"), "a page view is counted like an API call");
        served += 1;
        assert!(served <= 5, "more page views served than the rate allows");
    };
    assert_eq!((served, refused.status), (5, 429), "{}", refused.body);
    let retry: u64 = refused.header("retry-after").and_then(|s| s.parse().ok()).expect("Retry-After");
    assert!((1..=12).contains(&retry), "retry-after {retry}");
    assert_eq!(refused.header("content-security-policy"), Some(CSP));
    for said in ["Too many requests", "more than 5 requests in a minute", "pages and API calls", "Try again in"] {
        assert!(refused.body.contains(said), "{said:?} not in {}", refused.body);
    }
    // A form is a page view too, refused before it runs: nothing changes.
    let form = [("csrf", csrf.as_str()), ("full_name", "Renamed"), ("timezone", "UTC"), ("locale", "en")];
    let page = browser.post("/profile", &form).await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE full_name = 'Renamed'").await, 0);
    // The stylesheet and script are not counted: they answer while the pages wait.
    for path in [moltflow_server::dashboard::assets::style_path(), moltflow_server::dashboard::assets::script_path()] {
        for _ in 0..5 {
            assert_eq!(browser.get(path).await.status, 200, "{path}");
        }
    }

    // The same person's API calls draw on the same budget, and the other way round.
    let api = app.login("busy@example.com", PASSWORD).await;
    app.get("/auth/me", Some(&token(&api.body, "access_token"))).await.assert(429, "rate_limited");
    let mut other = Browser::new(&app);
    other.register("api-first@example.com").await;
    let access = token(&app.login("api-first@example.com", PASSWORD).await.body, "access_token");
    for _ in 0..5 {
        assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200);
    }
    let page = other.get("/profile").await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.header("retry-after").is_some());
}

#[tokio::test]
async fn the_profile_saves_name_time_zone_and_language_and_shows_bad_values_beside_them() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.register("profile@example.com").await;
    let page = browser
        .submit("/profile", "/profile", &[("full_name", "New Name"), ("timezone", "Mars/Olympus"), ("locale", "pt-BR")])
        .await;
    assert_eq!(page.status, 422);
    assert!(page.field_error("timezone").is_some_and(|m| m.contains("IANA")), "{}", page.body);
    assert_eq!(page.input_value("timezone").as_deref(), Some("Mars/Olympus"));
    assert_eq!(page.input_value("full_name").as_deref(), Some("New Name"));
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE full_name = 'New Name'").await, 0, "nothing half-done");

    let page = browser
        .submit(
            "/profile",
            "/profile",
            &[("full_name", "New Name"), ("timezone", "Europe/Lisbon"), ("locale", "pt-BR")],
        )
        .await;
    assert_eq!((page.status, page.location()), (303, "/profile?flash=profile_saved"));
    let page = browser.get("/profile?flash=profile_saved").await;
    assert!(page.body.contains("Your profile is saved."));
    assert_eq!(page.input_value("timezone").as_deref(), Some("Europe/Lisbon"));
    assert_eq!(page.input_value("full_name").as_deref(), Some("New Name"));
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_ends_the_others() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.register("change@example.com").await;
    let api = app.login("change@example.com", PASSWORD).await;
    let access = token(&api.body, "access_token");
    let new = "fresh-harbor-lantern-58";
    let page = browser
        .submit(
            "/profile",
            "/profile/password",
            &[("current_password", "wrong-one-123"), ("password", new), ("confirm_password", new)],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(page.field_error("current_password").is_some(), "{}", page.body);
    let page = browser
        .submit(
            "/profile",
            "/profile/password",
            &[("current_password", PASSWORD), ("password", new), ("confirm_password", new)],
        )
        .await;
    assert_eq!((page.status, page.location()), (303, "/profile?flash=password_changed"), "{}", page.body);
    assert!(browser.signed_in().await);
    app.get("/auth/me", Some(&access)).await.assert(401, "invalid_token");
}

#[tokio::test]
async fn deleting_the_account_needs_the_confirmation_and_the_password() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.register("bye@example.com").await;
    let page = browser
        .submit("/profile/delete", "/profile/delete", &[("current_password", PASSWORD), ("confirm", "yes")])
        .await;
    assert_eq!(page.status, 422);
    assert!(page.field_error("confirm").is_some());
    let page = browser
        .submit("/profile/delete", "/profile/delete", &[("current_password", "wrong-one-123"), ("confirm", "DELETE")])
        .await;
    assert_eq!(page.status, 400);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    let page = browser
        .submit("/profile/delete", "/profile/delete", &[("current_password", PASSWORD), ("confirm", "DELETE")])
        .await;
    assert_eq!((page.status, page.location()), (303, "/sign-in?flash=account_deleted"), "{}", page.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert!(!browser.signed_in().await);
}
