-- The mail outbox and one-time tokens (password reset, email verification, magic link, invitation).
-- Times are epoch milliseconds set by the service.

-- A mail is written here in the transaction of the change that causes it; the outbox worker
-- delivers it. Once sent, its bodies are wiped (they hold a one-time link) and the row stays as
-- the record the per-address hourly cap counts.
CREATE TABLE mail_outbox (
    id               TEXT PRIMARY KEY,
    to_addr          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    subject          TEXT NOT NULL,
    text_body        TEXT NOT NULL,
    html_body        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    sent_at          BIGINT,
    -- The server refused the mail for good (a permanent SMTP error): never retried.
    failed_at        BIGINT,
    -- A worker claimed the row until then; another worker may take it over afterwards.
    locked_until     BIGINT
);
CREATE INDEX mail_outbox_to ON mail_outbox(to_addr, created_at);
CREATE INDEX mail_outbox_due ON mail_outbox(sent_at, next_attempt_at);

-- Only the SHA-256 of a token is kept; the raw token exists in the mail (and the outbox row until
-- it is sent).
CREATE TABLE one_time_tokens (
    token_hash  TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('reset', 'verify', 'magic', 'invite')),
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX one_time_tokens_user ON one_time_tokens(user_id, kind);
