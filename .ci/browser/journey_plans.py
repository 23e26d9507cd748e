"""Billing and the audit log: an owner compares the plans monthly and yearly, upgrades through
the local provider's checkout page, and sees the new plan and limits; the cancel confirmation;
the audit log filtered by action, with a CSV of the page."""

from selenium.webdriver.common.by import By

from tenant import check, csv_rows, download, fresh_owner, table


def run(h):
    fresh_owner(h, "plans", verify=False)
    h.get("/billing")
    check(h, "billing", shot="billing")
    h.click_and_wait(h.driver.find_element(By.LINK_TEXT, "Yearly"))
    h.expect_text("a year")
    h.click_and_wait(h.driver.find_element(By.LINK_TEXT, "Monthly"))

    h.click_and_wait(h.find("form[action='/billing/upgrade'] input[value='starter'] ~ button"))
    assert "/billing/local/checkout/" in h.path(), h.path()
    h.click_and_wait(h.find("form button[type=submit]"))  # the local provider's Pay button
    h.get("/billing")
    assert "Starter" in h.find("article.plan.current h3").text
    h.get("/")
    h.expect_text("0 of 1,000 this month")

    h.get("/billing/cancel-subscription")
    check(h, "cancel confirmation")
    h.click_and_wait(h.find("form[action='/billing/cancel-subscription'] button"))
    h.expect_text("canceled at the end of the period")

    h.get("/audit")
    h.find("#f-action").send_keys("billing.checkout_started")
    h.click_and_wait(h.find("form[action='/audit'] button"))
    shown = table(h, "Audit log entries, newest first")
    assert len(shown) == 2 and shown[1][1] == "billing.checkout_started", shown
    link = h.find("a[href^='/audit.csv']").get_attribute("href")
    assert csv_rows(download(h, link[len(h.base):])) == shown
    check(h, "audit", shot="audit")
