-- See sql/postgres/V10__webhooks.sql. Times are Unix microseconds; `events` is a JSON array.

CREATE TABLE webhook_endpoints (
    id            TEXT    PRIMARY KEY,
    url           TEXT    NOT NULL,
    description   TEXT,
    sealed_secret BLOB    NOT NULL,
    events        TEXT    NOT NULL CHECK (json_valid(events) AND json_array_length(events) > 0),
    enabled       INTEGER NOT NULL DEFAULT 1,
    source        TEXT    NOT NULL CHECK (source IN ('config', 'api')),
    created_at    INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT    PRIMARY KEY,
    endpoint_id     TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT    NOT NULL,
    event_kind      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    last_status     INTEGER,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, created_at, id);
