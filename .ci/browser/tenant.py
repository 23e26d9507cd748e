"""Helpers of the tenant-page journeys (not a journey itself: run.py only runs journey_*.py)."""

import csv
import io
import json
import urllib.request

from selenium.webdriver.common.by import By

from harness import PASSWORD


def fresh_owner(h, prefix, verify=True):
    """Signs out whoever is signed in, registers a new owner through the form and (by default)
    verifies the address from the mail file. Answers the address."""
    h.driver.delete_all_cookies()
    address = f"{prefix}-{h.unique}@example.com"
    h.get("/register")
    h.fill({"full_name": f"{prefix.title()} Owner", "email": address, "password": PASSWORD,
            "tenant_name": f"{prefix.title()} Ltd"})
    assert h.path().startswith("/?flash=registered"), h.path()
    if verify:
        h.prove_mailbox(address)
    return address


def sign_in(h, address):
    h.driver.delete_all_cookies()
    h.get("/sign-in")
    h.fill({"email": address, "password": PASSWORD}, form="form[action='/sign-in']")


def table(h, caption):
    """The cells of the table with that caption, as shown (header row first)."""
    for t in h.driver.find_elements(By.TAG_NAME, "table"):
        if t.find_element(By.TAG_NAME, "caption").get_attribute("textContent").strip() == caption:
            return [[c.get_attribute("textContent").strip() for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
                    for row in t.find_elements(By.TAG_NAME, "tr")]
    raise AssertionError(f"no table {caption!r} on {h.path()}")


def download(h, path):
    """GETs `path` with the browser's cookies (what the download link fetches); answers the text."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in h.driver.get_cookies())
    req = urllib.request.Request(h.url(path), headers={"Cookie": cookie})
    with urllib.request.urlopen(req) as res:
        assert res.headers["Content-Type"] == "text/csv; charset=utf-8", res.headers["Content-Type"]
        return res.read().decode()


def csv_rows(text):
    return [row for row in csv.reader(io.StringIO(text))]


def api(h, method, path, key, body=None):
    """A call to the HTTP API with an API key; answers (status, JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(h.url("/api/v2" + path), data=data, method=method,
                                 headers={"X-API-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def check(h, name, shot=None):
    """axe-core (no serious or critical violation) and 375 px on the current page; a screenshot."""
    h.axe(name)
    if shot:
        h.screenshot(shot)
    h.narrow()
