"""Browser tests of the dashboard: a debug `moltflow serve` on a free port (SQLite in a temp dir,
mail written to files) and headless Chromium driven by Selenium through Debian's chromedriver.

Used by run.py, which hands one Harness to every journey_*.py module's run(h).
"""

import email
import email.policy
import glob
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "moltflow-ci")
AXE_DIR = os.path.join(CACHE, "axe")
AXE_JS = os.path.join(AXE_DIR, "node_modules", "axe-core", "axe.min.js")
SCREENSHOTS = os.path.join(ROOT, "docs", "screenshots")
PASSWORD = "quiet-meadow-lantern-77"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary():
    if os.environ.get("MOLTFLOW_CI_BINARY"):
        return os.environ["MOLTFLOW_CI_BINARY"]
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return os.path.join(json.loads(meta.stdout)["target_directory"], "debug", "moltflow")


def axe_source():
    """axe-core's axe.min.js from npm, installed into the CI cache when missing."""
    if not os.path.exists(AXE_JS):
        os.makedirs(AXE_DIR, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", AXE_DIR, "axe-core@4"], check=True)
    with open(AXE_JS, encoding="utf-8") as f:
        return f.read()


class Harness:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="moltflow-browser-")
        self.mail_dir = os.path.join(self.dir, "mail")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update({
            "MOLTFLOW_BIND": f"127.0.0.1:{self.port}",
            "MOLTFLOW_DATABASE_URL": f"sqlite://{self.dir}/moltflow.db",
            "MOLTFLOW_PUBLIC_URL": self.base,
            "MOLTFLOW_MAIL_DIR": self.mail_dir,
            "MOLTFLOW_LOG": "warn",
        })
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.server = subprocess.Popen([binary(), "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start: " + open(os.path.join(self.dir, "server.log")).read())
        options = Options()
        options.binary_location = os.environ.get("MOLTFLOW_CI_CHROMIUM", "/usr/bin/chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
            options.add_argument(arg)
        service = Service(executable_path=os.environ.get("MOLTFLOW_CI_CHROMEDRIVER", "/usr/bin/chromedriver"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.implicitly_wait(0)
        self._axe = None
        self.unique = str(int(time.time() * 1000))

    # --- pages -----------------------------------------------------------------------------
    def url(self, path):
        return self.base + path

    def get(self, path):
        self.driver.get(self.url(path))

    def path(self):
        parts = urllib.parse.urlsplit(self.driver.current_url)
        return parts.path + (("?" + parts.query) if parts.query else "")

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def text(self):
        return self.find("body").text

    def fill(self, fields, form="main form"):
        """Types each value into the field with that name (within `form`) and sends the form."""
        root = self.find(form)
        for name, value in fields.items():
            box = root.find_element(By.NAME, name)
            box.clear()
            box.send_keys(value)
        self.click_and_wait(root.find_element(By.CSS_SELECTOR, "button[type=submit]"))

    def click_and_wait(self, element):
        """Clicks and waits until the next page replaced this one."""
        html = self.find("html")
        element.click()

        def replaced(_driver):
            try:
                html.is_enabled()
                return False
            except WebDriverException:
                # Stale, or (a chromedriver race while the old document goes away) "Node with
                # given id does not belong to the document": either way the page was replaced.
                return True

        WebDriverWait(self.driver, 10).until(replaced)

    def field_error(self, name):
        found = self.driver.find_elements(By.ID, f"f-{name}-error")
        return found[0].text if found else None

    def expect_text(self, wanted):
        body = self.text()
        assert wanted in body, f"{wanted!r} not on {self.path()}:\n{body[:2000]}"

    # --- checks ----------------------------------------------------------------------------
    def axe(self, name=None):
        """Runs axe-core on the current page; fails on any serious or critical violation."""
        if self._axe is None:
            self._axe = axe_source()
        self.driver.execute_script(self._axe)
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document).then(r => done(r.violations)).catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));"
        )
        bad = [v for v in result if v.get("impact") in ("serious", "critical")]
        if bad:
            lines = [f"{v['id']} ({v['impact']}): {v['help']} at {[n.get('target') for n in v['nodes']][:5]}" for v in bad]
            raise AssertionError(f"axe on {name or self.path()}:\n  " + "\n  ".join(lines))
        return result

    def narrow(self, width=375):
        """Checks the current page at `width` px: nothing wider than the window (no sideways scroll)."""
        self.driver.set_window_size(width, 800)
        try:
            self.driver.refresh()
            overflow = self.driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
            )
            assert overflow <= 0, f"{self.path()} is {overflow}px wider than {width}px"
        finally:
            self.driver.set_window_size(1280, 900)

    def tab_to_skip_link(self):
        """Keyboard only: the first Tab lands on the skip link, and Enter moves to the main content."""
        self.find("body").send_keys(Keys.TAB)
        active = self.driver.switch_to.active_element
        assert active.text == "Skip to content", f"first Tab focused {active.tag_name} {active.text!r}"
        active.send_keys(Keys.ENTER)
        assert self.driver.switch_to.active_element.get_attribute("id") == "main"

    def screenshot(self, name):
        os.makedirs(SCREENSHOTS, exist_ok=True)
        self.driver.save_screenshot(os.path.join(SCREENSHOTS, f"{name}.png"))

    # --- mail --------------------------------------------------------------------------------
    def newest_mail(self, address, timeout=10, with_link=False):
        """The newest .eml file written for `address` (waits for the outbox worker); with
        `with_link`, the newest that carries a link (notices such as "address confirmed" do not)."""
        deadline = time.time() + timeout
        while True:
            found = []
            for path in glob.glob(os.path.join(self.mail_dir, "*.eml")):
                with open(path, "rb") as f:
                    msg = email.message_from_binary_file(f, policy=email.policy.default)
                if with_link and "token=" not in msg.get_body(preferencelist=("plain",)).get_content():
                    continue
                if address.lower() in str(msg["To"]).lower():
                    found.append((os.path.getmtime(path), path, msg))
            if found:
                return max(found, key=lambda t: (t[0], t[1]))[2]
            if time.time() > deadline:
                raise AssertionError(f"no mail for {address} in {self.mail_dir}")
            time.sleep(0.1)

    def mail_link(self, address, marker, timeout=10):
        """The path of the link containing `marker` in the newest mail to `address` that has one."""
        deadline = time.time() + timeout
        while True:
            msg = self.newest_mail(address, timeout, with_link=True)
            text = msg.get_body(preferencelist=("plain",)).get_content()
            match = re.search(r"https?://\S*" + re.escape(marker) + r"\S*", text)
            if match:
                return match.group(0)[len(self.base):]
            if time.time() > deadline:
                raise AssertionError(f"no {marker} link in the newest mail to {address}:\n{text}")
            time.sleep(0.1)

    def prove_mailbox(self, address, password=PASSWORD):
        """Follows the verification mail as the mailbox's owner does: the link's page only asks;
        "Confirm my address" is the first proof, which signs every session out and removes the
        password set before it (API.md §3); then back in by an emailed link, and a new password."""
        self.get(self.mail_link(address, "/verify-email?token="))
        self.expect_text("Confirm my address")
        self.fill({}, form="form[action='/verify-email']")
        self.expect_text("Your address is confirmed.")
        self.expect_text("the password set before this proof")
        self.fill({}, form="form[action='/magic-link/request']")
        self.expect_text("Check your mail")
        self.get(self.mail_link(address, "/magic-link?token="))
        self.fill({}, form="form[action='/magic-link']")
        self.get("/profile")
        self.fill({"password": password, "confirm_password": password}, form="form[action='/profile/password']")
        assert self.path() == "/profile?flash=password_changed", self.path()

    # --- outside the browser ---------------------------------------------------------------
    def post_without_browser(self, path, fields, cookies=True, origin=None):
        """POSTs a form with the browser's cookies but not through a page: answers the status."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{c['name']}={c['value']}" for c in self.driver.get_cookies())
        if origin:
            headers["Origin"] = origin
        req = urllib.request.Request(self.url(path), data=urllib.parse.urlencode(fields).encode(), headers=headers)
        try:
            return opener.open(req).status
        except urllib.error.HTTPError as e:
            return e.code

    def close(self):
        try:
            self.driver.quit()
        finally:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
