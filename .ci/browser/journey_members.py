"""Settings and members: allowed numbers with a bad number (its error beside the field, the text
kept, nothing saved) then good ones; AI consent and its record; invite a member, accept from the
mail file, and the member sees read-only settings and members, without the owner's buttons."""

from selenium.webdriver.common.by import By

from harness import PASSWORD
from tenant import check, fresh_owner


def run(h):
    fresh_owner(h, "team")

    h.get("/settings")
    check(h, "settings")
    box = h.find("#f-allowed_numbers")
    box.clear()
    box.send_keys("+5511999999999\n12345")
    h.click_and_wait(h.find("form[action='/settings'] button[type=submit]"))
    error = h.field_error("allowed_numbers")
    assert error and "Line 2" in error and "12345" in error, error
    assert h.find("#f-allowed_numbers").get_attribute("value") == "+5511999999999\n12345", "kept as typed"
    assert h.find("#f-allowed_numbers").get_attribute("aria-invalid") == "true"
    check(h, "settings with an error", shot="settings-error")
    h.get("/settings")
    assert h.find("#f-allowed_numbers").get_attribute("value") == "", "nothing was saved"
    box = h.find("#f-allowed_numbers")
    box.send_keys("+5511999999999\n+14155550123")
    h.click_and_wait(h.find("form[action='/settings'] button[type=submit]"))
    h.expect_text("The settings are saved.")
    assert h.find("#f-allowed_numbers").get_attribute("value") == "+5511999999999\n+14155550123"

    h.click_and_wait(h.find("form[action='/settings/ai-consent'] button"))
    h.expect_text("Your choice is recorded.")
    h.expect_text("Granted")
    h.expect_text("127.0.0.1")
    check(h, "settings with consent", shot="settings")

    # Invite a member; accept from the mail file in a signed-out browser.
    member = f"mia-{h.unique}@example.com"
    h.get("/members")
    h.fill({"email": member}, form="form[action='/members/invite']")
    h.expect_text("The invitation is sent.")
    h.expect_text(member)
    check(h, "members", shot="members")
    link = h.mail_link(member, "/accept-invitation?token=")
    h.driver.delete_all_cookies()
    h.get(link)
    h.fill({"full_name": "Mia Member", "password": PASSWORD}, form="form[action='/accept-invitation']")

    # The member: settings and members read-only, no button that would be refused.
    h.get("/settings")
    h.expect_text("an owner or admin of your workspace can change it")
    assert not h.driver.find_elements(By.CSS_SELECTOR, "form[action='/settings'], form[action='/settings/ai-consent']")
    h.expect_text("+14155550123")
    check(h, "settings as a member", shot="settings-member")
    h.get("/members")
    assert not h.driver.find_elements(By.CSS_SELECTOR, "form[action='/members/invite'], a[href$='/remove'], select[name=role]")
    check(h, "members as a member")
    for path in ("/billing", "/audit", "/keys", "/usage", "/"):
        h.get(path)
        check(h, f"{path} as a member")
    assert not h.driver.find_elements(By.CSS_SELECTOR, "form[action='/billing/upgrade']")
