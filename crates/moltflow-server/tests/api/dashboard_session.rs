//! The dashboard's session: its cookie, its timeouts, and that it is the API's session (ending
//! one ends the other).

use std::time::Duration;

use serde_json::json;

use crate::common::{PASSWORD, TestApp, token};
use crate::dashboard_browser::Browser;

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_and_secure_only_on_https() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let page = browser.register("cookie@example.com").await;
    let cookie = page.set_cookie("mf_session").expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http cannot carry a Secure cookie: {cookie}");
    let raw = browser.cookies["mf_session"].clone();
    assert_eq!(raw.len(), 43, "256 random bits");
    // Only its hash is stored, and no page carries it.
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM web_sessions WHERE token_hash = '{raw}'")).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM web_sessions").await, 1);
    let profile = browser.get("/profile").await;
    assert!(!profile.body.contains(&raw), "the cookie's secret is in the page");

    let https = TestApp::spawn_with(&[("public_url", "https://admin.example.com")]).await;
    let mut browser = Browser::new(&https);
    let page = browser.register("secure@example.com").await;
    let cookie = page.set_cookie("__Host-mf_session").expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(browser.signed_in().await, "the cookie works behind the https public URL");
}

/// What a browser demands of a `__Host-` cookie before it keeps it.
#[track_caller]
fn assert_host_cookie(set_cookie: &str) {
    assert!(set_cookie.starts_with("__Host-"), "{set_cookie}");
    for flag in ["; Secure", "; Path=/", "; HttpOnly", "; SameSite=Lax"] {
        assert!(set_cookie.contains(flag), "{flag} missing: {set_cookie}");
    }
    assert!(!set_cookie.to_ascii_lowercase().contains("domain="), "{set_cookie}");
}

#[tokio::test]
async fn behind_https_the_cookies_take_the_host_prefix_and_the_plain_names_are_not_read() {
    let app = TestApp::spawn_with(&[("public_url", "https://admin.example.com")]).await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/sign-in").await;
    assert_host_cookie(&page.set_cookie("__Host-mf_csrf").expect("a pre-session cookie"));
    assert!(page.set_cookie("mf_csrf").is_none());
    let page = browser.register("host@example.com").await;
    assert_host_cookie(&page.set_cookie("__Host-mf_session").expect("a session cookie"));
    assert!(page.set_cookie("mf_session").is_none());
    assert!(browser.signed_in().await);

    // The round trip: sign out (the prefixed cookie is the one cleared), sign in again.
    let page = browser.submit("/profile", "/sign-out", &[]).await;
    assert_eq!((page.status, page.location()), (303, "/sign-in?flash=signed_out"), "{}", page.body);
    let cleared = page.set_cookie("__Host-mf_session").expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_host_cookie(&cleared);
    assert!(!browser.signed_in().await);
    let page = browser.sign_in("host@example.com", PASSWORD).await;
    assert_eq!((page.status, page.location()), (303, "/"), "{}", page.body);
    assert!(browser.signed_in().await);

    // A live session's secret under the plain name opens nothing here: anyone who can plant that
    // name (a sibling subdomain, a plain-http answer) would get round the prefix.
    let raw = browser.cookies.remove("__Host-mf_session").expect("the session cookie");
    browser.cookies.insert("mf_session".into(), raw.clone());
    assert!(!browser.signed_in().await, "the unprefixed session cookie was read");
    browser.cookies.insert("__Host-mf_session".into(), raw);
    assert!(browser.signed_in().await);

    // Nor does a pre-session secret: the form is refused and nobody signs in.
    let mut other = Browser::new(&app);
    let form = other.get("/sign-in").await;
    let secret = other.cookies.remove("__Host-mf_csrf").expect("the pre-session cookie");
    other.cookies.insert("mf_csrf".into(), secret);
    let fields = [("csrf", form.csrf()), ("email", "host@example.com".into()), ("password", PASSWORD.into())];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = other.post("/sign-in", &fields).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.set_cookie("__Host-mf_session").is_none() && refused.set_cookie("mf_session").is_none());
}

#[tokio::test]
async fn signing_in_on_a_page_opens_the_apis_kind_of_session_and_the_api_can_end_it() {
    let app = TestApp::spawn().await;
    app.register("shared@example.com").await;
    let mut browser = Browser::new(&app);
    let page = browser.sign_in("shared@example.com", PASSWORD).await;
    assert_eq!((page.status, page.location()), (303, "/"), "{}", page.body);
    assert!(browser.signed_in().await);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE method = 'password'").await, 1);
    app.flush_audit().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_logs WHERE action = 'login.succeeded' AND details LIKE '%password%'")
            .await,
        1,
        "the page's sign-in is audited as the API's"
    );

    // "Sign out everywhere" through the API ends the dashboard's session at once.
    let api = app.login("shared@example.com", PASSWORD).await;
    let access = token(&api.body, "access_token");
    let r = app.post("/auth/logout", json!({"all_sessions": true}), Some(&access)).await;
    assert_eq!(r.status, 204);
    let page = browser.get("/keys").await;
    assert_eq!((page.status, page.location()), (303, "/sign-in?next=%2Fkeys"));
    assert_eq!(app.count("SELECT COUNT(*) FROM web_sessions").await, 0, "the dead cookie's row is gone");
}

#[tokio::test]
async fn signing_out_on_a_page_ends_the_session_and_everywhere_ends_the_apis_too() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.register("out@example.com").await;
    let api = app.login("out@example.com", PASSWORD).await;
    let access = token(&api.body, "access_token");

    // Sign out: this session only (the API's own session stays).
    let page = browser.submit("/profile", "/sign-out", &[]).await;
    assert_eq!((page.status, page.location()), (303, "/sign-in?flash=signed_out"));
    assert!(page.set_cookie("mf_session").is_some_and(|c| c.contains("Max-Age=0")));
    assert!(!browser.signed_in().await);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE method = 'register' AND revoked_at IS NULL").await, 0);
    assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200);

    // Everywhere: the API's session too.
    browser.sign_in("out@example.com", PASSWORD).await;
    assert!(browser.signed_in().await);
    let page = browser.submit("/profile", "/profile/sign-out-everywhere", &[]).await;
    assert_eq!((page.status, page.location()), (303, "/sign-in?flash=signed_out_everywhere"));
    assert!(!browser.signed_in().await);
    app.get("/auth/me", Some(&access)).await.assert(401, "invalid_token");
}

#[tokio::test]
async fn an_idle_session_ends_after_12_hours_and_any_session_after_30_days() {
    // Page views count against the user's rate, which in memory is measured in real time: the
    // 68 views below are days apart on the service's clock but a burst to the limiter.
    let app = TestApp::spawn_with(&[("rate_limits", "free=600")]).await;
    let mut browser = Browser::new(&app);
    browser.register("idle@example.com").await;
    let hour = Duration::from_secs(3600);

    // Used every 11 hours, it lives on.
    app.state.clock.advance(hour * 11);
    assert!(browser.signed_in().await);
    app.state.clock.advance(hour * 11);
    assert!(browser.signed_in().await);
    // Left alone for 12 hours, it ends, and so does the session row behind it.
    app.state.clock.advance(hour * 12);
    assert!(!browser.signed_in().await);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM web_sessions").await, 0);

    // However busy, a session ends 30 days after sign-in.
    browser.sign_in("idle@example.com", PASSWORD).await;
    for _ in 0..65 {
        app.state.clock.advance(hour * 11);
        assert!(browser.signed_in().await, "still within 30 days");
    }
    app.state.clock.advance(hour * 11);
    assert!(!browser.signed_in().await, "past 30 days");
}

#[tokio::test]
async fn a_signed_out_visitor_is_sent_to_sign_in_and_back_but_never_elsewhere() {
    let app = TestApp::spawn().await;
    app.register("next@example.com").await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/members").await;
    assert_eq!((page.status, page.location()), (303, "/sign-in?next=%2Fmembers"));
    let form = browser.get("/sign-in?next=%2Fmembers").await;
    assert_eq!(form.input_value("next").as_deref(), Some("/members"));
    let page = browser
        .post(
            "/sign-in",
            &[("csrf", &form.csrf()), ("email", "next@example.com"), ("password", PASSWORD), ("next", "/members")],
        )
        .await;
    assert_eq!(page.location(), "/members");

    let mut other = Browser::new(&app);
    for evil in ["//evil.example/", "https://evil.example/", "/\\evil.example"] {
        other.cookies.remove("mf_session");
        let form = other.get("/sign-in").await;
        let page = other
            .post(
                "/sign-in",
                &[("csrf", &form.csrf()), ("email", "next@example.com"), ("password", PASSWORD), ("next", evil)],
            )
            .await;
        assert_eq!(page.location(), "/", "{evil} must not be followed");
    }
}

/// What a redirect may write: a path of this site, as clean text (no control character or white
/// space a browser would drop to read `//host`).
#[track_caller]
fn assert_local(location: &str, next: &str) {
    assert!(
        location.starts_with('/')
            && !location[1..].starts_with(['/', '\\'])
            && !location.contains('\\')
            && !location.chars().any(|c| c.is_control() || c.is_whitespace()),
        "{next:?} sent the browser to {location:?}"
    );
}

/// `next=` as written in a query string: the form decoder turns `%09` into a tab and `%252f`
/// into `%2f` before any page sees it.
const ENCODED_ESCAPES: [&str; 8] = [
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d/evil.example",
    "%09//evil.example",
    "/%252f%252fevil.example",
    "/%255cevil.example",
    "/%2e%2e//evil.example",
    "%EF%BC%8F%EF%BC%8Fevil.example",
];

#[tokio::test]
async fn a_signed_in_visitor_is_never_sent_elsewhere_by_an_encoded_next() {
    let app = TestApp::spawn().await;
    app.register("escape@example.com").await;
    let mut browser = Browser::new(&app);
    browser.sign_in("escape@example.com", PASSWORD).await;
    assert!(browser.signed_in().await);
    for next in ENCODED_ESCAPES {
        let page = browser.get(&format!("/sign-in?next={next}")).await;
        assert_eq!(page.status, 303, "{next}: {}", page.body);
        assert_eq!(page.location(), "/", "{next}");
    }
    // A local target, query and all, is still where the visitor goes.
    let page = browser.get("/sign-in?next=%2Fkeys%3Fpage%3D2").await;
    assert_eq!(page.location(), "/keys?page=2");

    // The same values sent by the sign-in form itself.
    let mut other = Browser::new(&app);
    for next in ["/\t/evil.example", "/\n/evil.example", "/ /evil.example", "/%2f%2fevil.example"] {
        other.cookies.remove("mf_session");
        let form = other
            .get(&format!("/sign-in?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()))
            .await;
        assert_eq!(form.input_value("next").as_deref(), Some("/"), "{next:?} offered in the form");
        let page = other
            .post(
                "/sign-in",
                &[("csrf", &form.csrf()), ("email", "escape@example.com"), ("password", PASSWORD), ("next", next)],
            )
            .await;
        assert_eq!((page.status, page.location()), (303, "/"), "{next:?}");
    }
}

#[tokio::test]
async fn the_verification_banners_button_returns_only_to_a_page_of_this_site() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.register("banner@example.com").await;
    for next in
        ["/\t/evil.example", "/\r\n/evil.example", "/%2509/evil.example", "//evil.example", "https://evil.example"]
    {
        let page = browser.submit("/profile", "/verify-email/resend", &[("next", next)]).await;
        assert_eq!(page.status, 303, "{next:?}: {}", page.body);
        assert_local(page.location(), next);
        assert_eq!(page.location(), "/?flash=verification_sent", "{next:?}");
    }
    let page = browser.submit("/profile", "/verify-email/resend", &[("next", "/keys?page=2#new")]).await;
    assert_eq!(page.location(), "/keys?page=2&flash=verification_sent#new");
}
