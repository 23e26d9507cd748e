-- The dashboard's cookies: each names a row of `sessions` (the API's own), so revoking the session
-- ends both. Only the SHA-256 of the cookie's random token is kept.

CREATE TABLE web_sessions (
    token_hash    TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_session ON web_sessions(session_id);
