-- Billing: the provider's customer per tenant, the tenant's subscription, checkout sessions,
-- and the ids of provider events already applied (each is applied once).

CREATE TABLE billing_customers (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    customer_id  TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL
);

CREATE TABLE subscriptions (
    tenant_id             TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    provider              TEXT NOT NULL,
    subscription_id       TEXT NOT NULL,
    plan_id               TEXT NOT NULL,
    billing_cycle         TEXT NOT NULL,
    status                TEXT NOT NULL,
    current_period_end    BIGINT,
    cancel_at_period_end  BOOLEAN NOT NULL DEFAULT FALSE,
    last_event_at         BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX subscriptions_subscription ON subscriptions(subscription_id);

CREATE TABLE checkout_sessions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    plan_id        TEXT NOT NULL,
    billing_cycle  TEXT NOT NULL,
    url            TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    completed_at   BIGINT
);

CREATE TABLE billing_events (
    event_id     TEXT PRIMARY KEY,
    event_type   TEXT NOT NULL,
    tenant_id    TEXT,
    received_at  BIGINT NOT NULL
);
