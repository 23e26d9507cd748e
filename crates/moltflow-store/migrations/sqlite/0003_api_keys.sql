-- API keys: only the SHA-256 of the secret is kept. During a rotation's grace period the previous
-- secret's hash stays valid until previous_expires_at.

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_by          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    key_prefix          TEXT NOT NULL,
    key_hash            TEXT NOT NULL UNIQUE,
    previous_key_hash   TEXT UNIQUE,
    previous_expires_at BIGINT,
    scopes              TEXT NOT NULL,
    expires_at          BIGINT,
    created_at          BIGINT NOT NULL,
    last_used_at        BIGINT,
    revoked_at          BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id, id);
CREATE INDEX api_keys_creator ON api_keys(created_by);
