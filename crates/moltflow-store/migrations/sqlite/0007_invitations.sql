-- Invitations to join a tenant: the mailed token is kept as SHA-256 only.

CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash   TEXT NOT NULL UNIQUE,
    invited_by   TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    accepted_at  BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX invitations_tenant ON invitations(tenant_id, created_at);
CREATE INDEX invitations_email ON invitations(email);
