//! The dashboard pages the mailed links open: email verification, password reset, magic-link
//! sign-in and invitations; each acts only when its button is pressed.

use crate::common::{PASSWORD, TestApp, token};
use crate::dashboard_browser::{Browser, wait_for_link};

#[tokio::test]
async fn the_verification_link_only_asks_and_its_button_proves_the_mailbox() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.register("verify@example.com").await;
    let home = browser.get("/?flash=registered").await;
    assert!(home.body.contains("Please verify your email address"));
    assert!(home.body.contains("Welcome!"));
    let link = wait_for_link(&app, "/verify-email?token=").await;
    // A mail scanner fetching the link (no cookies, no form) proves nothing.
    let scanned = Browser::new(&app).get(&link).await;
    assert_eq!(scanned.status, 200);
    assert!(scanned.body.contains("Confirm my address"), "{}", scanned.body);
    assert!(scanned.body.contains("verify@example.com"));
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE email_verified = TRUE").await, 0);
    assert!(browser.signed_in().await);

    let token = link.split("token=").nth(1).expect("a token");
    let page = browser.submit(&link, "/verify-email", &[("token", token)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Your address is confirmed"), "{}", page.body);
    assert!(page.body.contains("1 signed-in session, signed out"), "{}", page.body);
    assert!(page.body.contains("the password set before this proof"), "{}", page.body);
    assert!(page.body.contains("Email me a sign-in link"));
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE email_verified = TRUE AND password_hash IS NULL").await, 1);
    // The first proof ended every session, this browser's too.
    assert!(!browser.signed_in().await);
    // The link works once.
    let again = browser.get(&link).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("not valid any more"));
    // The button's page offers the way back in: a sign-in link to the confirmed address.
    let sent = browser.submit("/sign-in", "/magic-link/request", &[("email", "verify@example.com")]).await;
    assert_eq!(sent.status, 200);
    let magic = wait_for_link(&app, "/magic-link?token=").await;
    let magic_token = magic.split("token=").nth(1).expect("a token");
    let signed = browser.submit(&magic, "/magic-link", &[("token", magic_token)]).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let home = browser.get("/").await;
    assert!(!home.body.contains("Please verify your email address"), "{}", home.body);
}

#[tokio::test]
async fn forgot_password_mails_a_link_whose_page_resets_it_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.register("forgot@example.com").await;
    let mut anonymous = Browser::new(&app);
    let page = anonymous.submit("/forgot-password", "/forgot-password", &[("email", "forgot@example.com")]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Check your mail"));
    let link = wait_for_link(&app, "/reset-password?token=").await;
    let form = anonymous.get(&link).await;
    let token = form.input_value("token").expect("the token travels in the form");
    let new = "brand-new-meadow-lantern-91";
    let page = anonymous
        .post(
            "/reset-password",
            &[("csrf", &form.csrf()), ("token", &token), ("new_password", new), ("confirm_password", "other")],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.field_error("confirm_password").is_some());
    let page = anonymous
        .post(
            "/reset-password",
            &[("csrf", &form.csrf()), ("token", &token), ("new_password", new), ("confirm_password", new)],
        )
        .await;
    assert_eq!((page.status, page.location()), (303, "/sign-in?flash=password_reset"), "{}", page.body);
    assert!(!browser.signed_in().await, "a reset ends every session, the dashboard's too");
    let page = anonymous.sign_in("forgot@example.com", new).await;
    assert_eq!(page.location(), "/");
}

#[tokio::test]
async fn a_magic_link_signs_in_only_when_its_button_is_pressed() {
    let app = TestApp::spawn().await;
    app.register("magic@example.com").await;
    let mut browser = Browser::new(&app);
    let page = browser.submit("/sign-in", "/magic-link/request", &[("email", "magic@example.com")]).await;
    assert!(page.body.contains("Check your mail"));
    let link = wait_for_link(&app, "/magic-link?token=").await;
    // Following the link (a mail scanner does) spends nothing.
    let landing = browser.get(&link).await;
    assert_eq!(landing.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE method = 'magic_link'").await, 0);
    let token = landing.input_value("token").unwrap();
    let page = browser.post("/magic-link", &[("csrf", &landing.csrf()), ("token", &token)]).await;
    assert_eq!((page.status, page.location()), (303, "/"));
    assert!(browser.signed_in().await);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE method = 'magic_link'").await, 1);
}

#[tokio::test]
async fn an_invitation_link_opens_a_page_that_creates_the_member_and_signs_in() {
    let app = TestApp::spawn().await;
    let pair = app.register("boss@example.com").await;
    let access = token(&pair, "access_token");
    app.store.execute_raw("UPDATE users SET email_verified = TRUE").await.unwrap();
    let r = app
        .post(
            "/tenant/invitations",
            serde_json::json!({"email": "joiner@example.com", "role": "member"}),
            Some(&access),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let link = wait_for_link(&app, "/accept-invitation?token=").await;
    let mut browser = Browser::new(&app);
    let form = browser.get(&link).await;
    assert_eq!(form.status, 200);
    let token = form.input_value("token").unwrap();
    let page = browser
        .post(
            "/accept-invitation",
            &[("csrf", &form.csrf()), ("token", &token), ("full_name", ""), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.field_error("full_name").is_some());
    let page = browser
        .post(
            "/accept-invitation",
            &[("csrf", &form.csrf()), ("token", &token), ("full_name", "Jo Iner"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!((page.status, page.location()), (303, "/?flash=joined"), "{}", page.body);
    let home = browser.get("/?flash=joined").await;
    assert!(home.body.contains("Jo Iner · member"));
    assert!(!home.body.contains("Please verify"), "the invitation proved the address");
}
