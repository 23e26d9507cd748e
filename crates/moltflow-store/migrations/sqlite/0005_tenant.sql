-- Tenant settings, GDPR consent records (append-only: triggers refuse UPDATE and DELETE) and
-- the index the audit log pages through.

CREATE TABLE tenant_settings (
    tenant_id                    TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    allowed_numbers              TEXT NOT NULL DEFAULT '[]',
    require_approval             BOOLEAN NOT NULL DEFAULT FALSE,
    ai_consent_enabled           BOOLEAN NOT NULL DEFAULT FALSE,
    chat_history_access_enabled  BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at                   BIGINT NOT NULL
);

-- No foreign key: a consent record outlives the tenant and user it names (proof of consent).
CREATE TABLE consent_records (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    consent_type  TEXT NOT NULL,
    version       TEXT NOT NULL,
    granted       BOOLEAN NOT NULL,
    user_id       TEXT,
    ip            TEXT,
    user_agent    TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX consent_records_tenant ON consent_records(tenant_id, id);

CREATE TRIGGER consent_records_no_update BEFORE UPDATE ON consent_records
BEGIN
    SELECT RAISE(ABORT, 'consent records are append-only');
END;

CREATE TRIGGER consent_records_no_delete BEFORE DELETE ON consent_records
BEGIN
    SELECT RAISE(ABORT, 'consent records are append-only');
END;

CREATE INDEX audit_logs_tenant_action ON audit_logs(tenant_id, action, id);
