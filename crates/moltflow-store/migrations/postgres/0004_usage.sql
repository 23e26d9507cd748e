-- Usage metering (API.md §7). Day keys 'YYYY-MM-DD' and month keys 'YYYY-MM' are UTC, computed by
-- the service. Quantities are positive integers; sums stay far below 2^63.

-- Every accepted event once: its id is the idempotency key per tenant; kept for audits of sends.
CREATE TABLE usage_events (
    tenant_id   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    metric      TEXT NOT NULL,
    quantity    BIGINT NOT NULL,
    session_id  TEXT,
    day         TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

-- Daily sums per session ('' when the usage named no session): what /usage/daily reads.
CREATE TABLE usage_daily (
    tenant_id   TEXT NOT NULL,
    day         TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    metric      TEXT NOT NULL,
    quantity    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, session_id, metric)
);

-- Monthly counters: what consume checks and counts against the plan limit.
CREATE TABLE usage_monthly (
    tenant_id   TEXT NOT NULL,
    month       TEXT NOT NULL,
    metric      TEXT NOT NULL,
    used        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, month, metric)
);

-- Current counts set by PUT /usage/gauges.
CREATE TABLE usage_gauges (
    tenant_id   TEXT NOT NULL,
    metric      TEXT NOT NULL,
    value       BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, metric)
);

-- Granted consumes that carried an idempotency key, with the answer a replay gets.
CREATE TABLE usage_consumptions (
    tenant_id       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    metric          TEXT NOT NULL,
    quantity        BIGINT NOT NULL,
    used            BIGINT NOT NULL,
    limit_value     BIGINT,
    at              BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX usage_consumptions_at ON usage_consumptions(at);
