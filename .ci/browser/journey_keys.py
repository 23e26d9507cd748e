"""API keys and usage: create a key with a preset and a ticked scope, see its secret exactly once
(not in the list, not through history), use it to post usage events, see them in the overview's
chart, the usage page's chart and table, and a CSV equal to the table; revoke with the
confirmation page."""

import re

from selenium.webdriver.common.by import By

from tenant import api, check, csv_rows, download, fresh_owner, table


def run(h):
    fresh_owner(h, "keys")
    h.get("/keys")
    h.expect_text("No keys yet")
    check(h, "keys, empty")

    # Create: the messaging preset plus usage:write ticked.
    form = h.find("form[action='/keys'][method='post']")
    form.find_element(By.NAME, "name").send_keys("outreach-bot")
    form.find_element(By.CSS_SELECTOR, "label[for='preset-messaging']").click()
    form.find_element(By.CSS_SELECTOR, "label[for='scope-usage-write']").click()
    h.click_and_wait(form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    h.expect_text("shown only this once")
    secret = h.find("#secret").text.strip()
    assert re.fullmatch(r"mf_[A-Za-z0-9]{40,}", secret), secret
    copy = h.find("button[data-copy='secret']")
    assert copy.is_displayed(), "the copy button shows once the script runs"
    h.axe("key secret")
    # No screenshot: it would hold a secret, if only of a throwaway server.

    # Never again: a reload sends the form again, which shows no secret and creates no key ...
    h.driver.refresh()
    assert h.path() == "/keys?flash=key_shown", h.path()
    assert secret not in h.driver.page_source
    h.expect_text("shown once and cannot be shown again")
    assert len(h.driver.find_elements(By.CSS_SELECTOR, "table.keys tbody tr")) == 1, "one key, not two"
    # ... the list shows the prefix only, and history does not bring the page back.
    h.get("/keys")
    assert secret not in h.driver.page_source
    h.expect_text("outreach-bot")
    check(h, "keys", shot="keys")
    # The filter finds it by a part of its name, in any case, and says so when nothing matches.
    search = h.find("#f-search")
    search.send_keys("OUTREACH")
    h.click_and_wait(h.find("form[role='search'] button[type=submit]"))
    assert h.path() == "/keys?search=OUTREACH&state=", h.path()
    assert len(h.driver.find_elements(By.CSS_SELECTOR, "table.keys tbody tr")) == 1
    search = h.find("#f-search")
    search.clear()
    search.send_keys("nobody-named-this")
    h.click_and_wait(h.find("form[role='search'] button[type=submit]"))
    h.expect_text("No key matches.")
    check(h, "keys, filtered to nothing")
    h.get("/keys")
    h.driver.back()
    assert secret not in h.driver.page_source, "going back does not show the secret"

    # Usage events through the API with the key, seen in the pages.
    events = [{"id": f"e{i}", "metric": "messages", "quantity": q, "session_id": s}
              for i, (q, s) in enumerate([(7, "wa-sales"), (3, "wa-support"), (2, "wa-sales")])]
    events.append({"id": "ai", "metric": "ai_replies", "quantity": 2})
    status, body = api(h, "POST", "/usage/events", secret, {"events": events})
    assert status == 202 and body["accepted"] == 4, (status, body)

    h.get("/")
    h.expect_text("12 of 50 this month")
    desc = h.find("figure.chart svg desc").get_attribute("textContent")
    assert desc.startswith("12 messages"), desc
    check(h, "overview", shot="overview")

    h.get("/usage")
    month = h.find("#f-month").get_attribute("value")
    shown = table(h, f"Usage per day and WhatsApp session, {month}")
    assert shown[0] == ["Date", "Messages: wa-sales", "Messages: wa-support", "Messages", "AI replies"], shown[0]
    assert shown[-1] == ["Total", "9", "3", "12", "2"], shown[-1]
    assert len(h.driver.find_elements(By.CSS_SELECTOR, "figure.chart rect.bar")) >= 2, "bars of both sessions"
    link = h.find("a[href^='/usage/daily.csv']").get_attribute("href")
    assert csv_rows(download(h, link[len(h.base):])) == shown, "the CSV is the table shown"
    check(h, "usage", shot="usage")

    # Revoke through the confirmation page (no script needed); the key stops working.
    h.get("/keys")
    h.click_and_wait(h.driver.find_element(By.PARTIAL_LINK_TEXT, "Revoke"))
    check(h, "revoke confirmation")
    h.click_and_wait(h.find("form[action$='/revoke'] button[type=submit]"))
    h.expect_text("The key is revoked")
    status, _ = api(h, "GET", "/usage/current", secret)
    assert status == 401, status
