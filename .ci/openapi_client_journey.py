"""A user's first minutes, driven through a client generated from /openapi.json.

Usage: openapi_client_journey.py BASE_URL WORK_DIR

Fetches the document, validates it against OpenAPI 3.1 (openapi-spec-validator), generates a typed
client with openapi-python-client, imports it and drives: register, create an API key, read the
usage with that key. Every response must parse into its documented model (`parsed` is the typed
model, never None or an error body); any mismatch fails the run.
"""

import importlib
import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path


def fail(message):
    print(f"openapi client journey: FAILED: {message}")
    sys.exit(1)


def main():
    base_url, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(f"{base_url}/openapi.json") as response:
        document = json.load(response)
    spec = work / "openapi.json"
    spec.write_text(json.dumps(document))

    from openapi_spec_validator import validate

    validate(document)
    print("openapi client journey: the document is valid OpenAPI", document["openapi"])

    # No post hooks: the generated code is imported as it is, not formatted.
    config = work / "generator.json"
    config.write_text(json.dumps({"post_hooks": [], "project_name_override": "moltflow_client"}))
    out = work / "moltflow_client"
    generator = Path(sys.executable).with_name("openapi-python-client")
    subprocess.run(
        [str(generator), "generate", "--path", str(spec), "--meta", "none", "--config", str(config),
         "--output-path", str(out), "--overwrite", "--fail-on-warning"],
        check=True,
    )
    sys.path.insert(0, str(work))
    client_mod = importlib.import_module("moltflow_client")
    register = importlib.import_module("moltflow_client.api.auth.register")
    me = importlib.import_module("moltflow_client.api.auth.me")
    create_key = importlib.import_module("moltflow_client.api.api_keys.create_api_key")
    get_key = importlib.import_module("moltflow_client.api.api_keys.get_api_key")
    current = importlib.import_module("moltflow_client.api.usage.current")
    models = importlib.import_module("moltflow_client.models")

    def expect(response, status, model):
        if response.status_code != status:
            fail(f"expected {status}, got {response.status_code}: {response.content[:300]!r}")
        if not isinstance(response.parsed, model):
            fail(f"expected a {model.__name__}, parsed {type(response.parsed).__name__}")
        return response.parsed

    anonymous = client_mod.Client(base_url=base_url, raise_on_unexpected_status=True)
    email = f"journey-{uuid.uuid4().hex[:12]}@example.com"
    body = models.RegisterRequest(email=email, password="quiet-meadow-lantern-77", full_name="Journey Owner",
                                  tenant_name="Journey Agency")
    pair = expect(register.sync_detailed(client=anonymous, body=body), 201, models.TokenPair)
    print("registered", pair.user.email, "as", pair.user.role)

    owner = client_mod.AuthenticatedClient(base_url=base_url, token=pair.access_token,
                                           raise_on_unexpected_status=True)
    profile = expect(me.sync_detailed(client=owner), 200, models.MeResponse)
    if profile.email != email:
        fail(f"/auth/me names {profile.email}, not {email}")

    scope = models.CreateApiKeyRequestScopesItem  # the catalogue, as a typed enum
    request = models.CreateApiKeyRequest(name="journey-bot", scopes=[scope("usage:read"), scope("usage:write")],
                                         expires_in_days=30)
    key = expect(create_key.sync_detailed(client=owner, body=request), 201, models.ApiKeyWithSecret)
    print("created key", key.key_prefix, "with scopes", key.scopes)
    if sorted(key.scopes) != ["usage:read", "usage:write"]:
        fail(f"the key holds {key.scopes}")
    shown = expect(get_key.sync_detailed(client=owner, id=key.id), 200, models.ApiKey)
    if shown.id != key.id or not shown.is_active:
        fail("the new key does not read back as active")

    # The key authenticates as `X-API-Key`, the documented `api_key` scheme.
    with_key = client_mod.AuthenticatedClient(base_url=base_url, token=key.raw_key, prefix="",
                                              auth_header_name="X-API-Key", raise_on_unexpected_status=True)
    usage = expect(current.sync_detailed(client=with_key), 200, models.UsageCurrent)
    print("usage read with the key:", usage.to_dict())

    denied = current.sync_detailed(client=anonymous)
    if denied.status_code != 401 or not isinstance(denied.parsed, models.ErrorBody):
        fail(f"without credentials expected a 401 ErrorBody, got {denied.status_code}")
    print("openapi client journey: OK")


if __name__ == "__main__":
    main()
