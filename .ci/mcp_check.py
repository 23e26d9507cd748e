"""The MCP server as an agent meets it, through the official MCP Python SDK (PyPI `mcp`):
over stdio (`moltflow mcp`) and over streamable HTTP (`/mcp` of `moltflow serve`).

Usage: python mcp_check.py /path/to/moltflow
Starts its own `moltflow serve` on a free loopback port in a temporary folder (SQLite), registers
an owner, makes a wide and a narrow API key, and checks what an agent would rely on. Exits non-zero
on the first broken expectation, printing what it saw.
"""

import asyncio
import email
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

BILLING_TOOLS = {"get_subscription", "list_plans", "create_checkout_link", "create_portal_link"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(base, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, (json.loads(text) if text else None)


def mail_token(work, kind, timeout=10):
    """The token of the newest mail of `kind` the server wrote into its mail folder."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in sorted(glob.glob(os.path.join(work, "mail", f"*-{kind}.eml")), reverse=True):
            with open(path, "rb") as f:
                msg = email.message_from_binary_file(f)
            part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
            match = re.search(r"token=([A-Za-z0-9_-]+)", part.get_payload(decode=True).decode())
            if match:
                return match.group(1)
        time.sleep(0.1)
    check(False, f"a {kind} mail in {work}/mail")


PASSED = 0


def check(condition, what, seen=None):
    global PASSED
    if not condition:
        print(f"FAIL: {what}" + (f"\n  saw: {seen}" if seen is not None else ""))
        sys.exit(1)
    PASSED += 1
    print(f"ok: {what}")


def text_of(result):
    return [c.text for c in result.content if getattr(c, "type", "") == "text"]


async def exercise(session, label, narrow):
    await session.initialize()
    tools = {t.name for t in (await session.list_tools()).tools}
    if narrow:
        check(tools == {"get_usage_current", "get_usage_daily", "get_usage_history"},
              f"{label}: a usage:read key sees only the usage tools", sorted(tools))
        try:
            await session.call_tool("get_subscription", {})
            check(False, f"{label}: a billing tool call beyond the key's scopes fails")
        except MCPError as e:
            check("billing:read" in str(e), f"{label}: the refused call names the missing scope", str(e))
        usage = await session.call_tool("get_usage_current", {})
        check(not usage.is_error, f"{label}: the narrow key reads usage", text_of(usage))
        return
    check(BILLING_TOOLS <= tools and "create_api_key" in tools and "list_audit_logs" in tools,
          f"{label}: a `*` key sees every tool", sorted(tools))
    usage = await session.call_tool("get_usage_current", {})
    texts = text_of(usage)
    check(not usage.is_error and texts[0].startswith("Plan free:"), f"{label}: usage summary line", texts)
    body = json.loads(texts[1])
    check(body["metrics"]["messages"]["limit"] == 50, f"{label}: usage JSON is the API's", body)
    created = await session.call_tool("create_api_key", {"name": f"from {label}", "scopes": ["usage:read"]})
    key = json.loads(text_of(created)[1])
    check(not created.is_error and key["raw_key"].startswith("mf_"), f"{label}: create_api_key returns the secret once", key)
    rotated = await session.call_tool("rotate_api_key", {"id": key["id"], "grace_period_minutes": 0})
    check(not rotated.is_error and json.loads(text_of(rotated)[1])["raw_key"] != key["raw_key"],
          f"{label}: rotate_api_key gives a new secret", text_of(rotated))
    revoked = await session.call_tool("revoke_api_key", {"id": key["id"]})
    check(not revoked.is_error, f"{label}: revoke_api_key", text_of(revoked))
    missing = await session.call_tool("revoke_api_key", {"id": "0193a6c0-0000-7000-8000-000000000000"})
    check(missing.is_error and "not_found" in text_of(missing)[0], f"{label}: an API error is a tool error", text_of(missing))
    bad = await session.call_tool("update_tenant_settings", {"allowed_numbers": ["12345"]})
    check(bad.is_error and "allowed_numbers" in text_of(bad)[0], f"{label}: a 422 names the field", text_of(bad))


async def main(binary):
    work = tempfile.mkdtemp(prefix="moltflow-mcp-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLTFLOW_")}
    server = subprocess.Popen(
        [binary, "serve"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env | {"MOLTFLOW_BIND": f"127.0.0.1:{port}", "MOLTFLOW_PUBLIC_URL": base, "MOLTFLOW_LOG": "warn"},
    )
    try:
        for _ in range(200):
            try:
                if http(base, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        status, pair = http(base, "POST", "/api/v2/auth/register",
                            {"email": "agent-owner@example.com", "password": "sunny-tulip-harbor-42", "full_name": "Owner"})
        check(status == 201, "register an owner", pair)
        # An unverified account may not make a `*` key; the first proof of the mailbox then takes
        # back the registration's session, so the owner signs in again by an emailed link.
        status, _ = http(base, "POST", "/api/v2/api-keys", {"name": "early", "scopes": ["*"]},
                         {"Authorization": f"Bearer {pair['access_token']}"})
        check(status == 403, "an unverified owner makes no `*` key", status)
        token = mail_token(work, "verify_email")
        check(http(base, "POST", "/api/v2/auth/verify-email", {"token": token})[0] == 200, "verify the address")
        http(base, "POST", "/api/v2/auth/magic-link/request", {"email": "agent-owner@example.com"})
        status, pair = http(base, "POST", "/api/v2/auth/magic-link/verify", {"token": mail_token(work, "magic_link")})
        check(status == 200, "sign in again by magic link", pair)
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        wide = http(base, "POST", "/api/v2/api-keys", {"name": "agent", "scopes": ["*"]}, bearer)[1]["raw_key"]
        narrow = http(base, "POST", "/api/v2/api-keys", {"name": "usage", "scopes": ["usage:read"]}, bearer)[1]["raw_key"]

        status, body = http(base, "POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                            {"Accept": "application/json, text/event-stream"})
        check(status == 401 and body["code"] == "not_authenticated", "/mcp without a credential is 401", (status, body))

        for key, is_narrow in ((wide, False), (narrow, True)):
            params = StdioServerParameters(command=binary, args=["mcp"],
                                           env=env | {"MOLTFLOW_API_KEY": key, "MOLTFLOW_API_URL": base + "/api/v2"})
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as session:
                    await exercise(session, "stdio" + (" (narrow)" if is_narrow else ""), is_narrow)
            headers = {"X-API-Key": key} if is_narrow else {"Authorization": f"Bearer {key}"}
            async with create_mcp_http_client(headers=headers) as client:
                async with streamable_http_client(base + "/mcp", http_client=client) as (read, write, *_):
                    async with ClientSession(read, write) as session:
                        await exercise(session, "http" + (" (narrow)" if is_narrow else ""), is_narrow)

        status, page = http(base, "GET", "/api/v2/audit-logs?action=api_key.created&limit=50", None, bearer)
        via = [e["details"].get("via") for e in page["items"]]
        check(status == 200 and via.count("mcp") == 1, "the key made through /mcp is audited via mcp", via)
        agents = [e["user_agent"] or "" for e in page["items"]]
        check(sum(a.startswith("moltflow-mcp/") for a in agents) == 1, "the key made over stdio names the MCP server", agents)
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    print(f"MCP checks: {PASSED} passed, 0 failed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
