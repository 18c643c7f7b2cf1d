-- See sql/postgres/V4__auth_events.sql. Times are Unix microseconds.
CREATE TABLE auth_events (
    id         TEXT    PRIMARY KEY,
    user_id    TEXT    REFERENCES users (id) ON DELETE SET NULL,
    kind       TEXT    NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    request_id TEXT,
    details    TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);

CREATE INDEX auth_events_user ON auth_events (user_id, created_at, id);
CREATE INDEX auth_events_created ON auth_events (created_at, id);
