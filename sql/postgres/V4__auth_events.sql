-- The audit log: who did what, from where, under which request id.
CREATE TABLE auth_events (
    id         uuid        PRIMARY KEY,
    user_id    uuid        REFERENCES users (id) ON DELETE SET NULL,
    kind       text        NOT NULL,
    ip         text,
    user_agent text,
    request_id text,
    details    text        NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX auth_events_user ON auth_events (user_id, created_at, id);
CREATE INDEX auth_events_created ON auth_events (created_at, id);
