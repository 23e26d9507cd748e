"""The account journey: register → verify from the mail file → overview; profile; sign out and
in again; every account page at 375 px and through axe-core; a form without its token refused."""

from harness import PASSWORD


def run(h):
    address = f"owner-{h.unique}@example.com"

    # Signed out: the sign-in page owns /, and points a newcomer to the API docs.
    h.get("/")
    h.expect_text("Sign in")
    h.expect_text("/openapi.json")
    h.tab_to_skip_link()
    h.axe("sign in")
    h.screenshot("sign-in")
    h.narrow()
    for path in ("/register", "/forgot-password", "/reset-password?token=x", "/magic-link?token=x",
                 "/accept-invitation?token=x", "/docs"):
        h.get(path)
        h.axe(path)
        h.narrow()

    # Register: a short password first (the server's message beside the field, what was typed
    # kept; the browser's own check stops a malformed address before it is sent).
    h.get("/register")
    h.fill({"full_name": "Olga Owner", "email": address, "password": "short", "tenant_name": "Olga's Shop"})
    assert h.field_error("password"), "the password's error is beside it"
    assert h.find("#f-full_name").get_attribute("value") == "Olga Owner"
    assert h.find("#f-email").get_attribute("value") == address
    assert h.find("#f-password").get_attribute("value") == "", "a password is never sent back"
    h.axe("register with errors")
    h.screenshot("register-errors")
    h.fill({"password": PASSWORD})
    assert h.path() == "/?flash=registered", h.path()
    h.expect_text("Please verify your email address")
    h.axe("overview, unverified")
    h.screenshot("overview-unverified")
    h.narrow()

    # Verify from the mail file: the link's page asks, its button proves the mailbox.
    h.get(h.mail_link(address, "/verify-email?token="))
    h.axe("confirm address")
    h.screenshot("confirm-address")
    h.prove_mailbox(address)
    h.get("/")
    assert "Please verify" not in h.text()

    # Every page of the navigation opens (the tenant pages included).
    for label in ("API keys", "Usage", "Members", "Settings", "Billing", "Audit log", "Profile", "Overview"):
        h.click_and_wait(h.driver.find_element("link text", label))
        assert h.find("h1").text, label

    # Profile: a bad time zone shows beside its field, then a good one saves.
    h.get("/profile")
    h.axe("profile")
    h.narrow()
    h.fill({"full_name": "Olga Q. Owner", "timezone": "Mars/Olympus", "locale": "en"}, form="form[action='/profile']")
    assert h.field_error("timezone"), "the time zone's error is beside it"
    assert h.find("#f-timezone").get_attribute("value") == "Mars/Olympus"
    h.axe("profile with errors")
    h.fill({"timezone": "Europe/Lisbon"}, form="form[action='/profile']")
    h.expect_text("Your profile is saved.")
    assert h.find("#f-full_name").get_attribute("value") == "Olga Q. Owner"
    h.screenshot("profile")
    h.get("/profile/delete")
    h.axe("delete account")

    # CSRF: the same form without its token (or from another origin) is refused.
    assert h.post_without_browser("/profile", {"full_name": "Mallory", "timezone": "UTC", "locale": "en"}) == 403
    token = h.find("input[name=csrf]").get_attribute("value")
    assert h.post_without_browser("/profile", {"csrf": token, "full_name": "Mallory", "timezone": "UTC", "locale": "en"},
                                  origin="https://evil.example") == 403
    h.get("/profile")
    assert h.find("#f-full_name").get_attribute("value") == "Olga Q. Owner", "nothing changed"

    # Sign out, then in again.
    h.click_and_wait(h.find("header form[action='/sign-out'] button"))
    h.expect_text("You are signed out.")
    h.get("/profile")
    assert h.path().startswith("/sign-in?next="), h.path()
    h.fill({"email": address, "password": "wrong-password-123"}, form="form[action='/sign-in']")
    h.expect_text("Incorrect email or password")
    assert h.find("#f-email").get_attribute("value") == address
    h.fill({"password": PASSWORD}, form="form[action='/sign-in']")
    assert h.path() == "/profile", h.path()
    h.expect_text("Olga Q. Owner")
