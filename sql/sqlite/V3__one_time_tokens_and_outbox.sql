-- See sql/postgres/V3__one_time_tokens_and_outbox.sql. Times are Unix microseconds.

CREATE TABLE one_time_tokens (
    token_hash  BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    kind        TEXT    NOT NULL CHECK (kind IN ('email_verification', 'password_reset', 'invitation')),
    user_id     TEXT    REFERENCES users (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    metadata    TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
);

CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);

CREATE TABLE email_outbox (
    id              TEXT    PRIMARY KEY,
    message_id      TEXT    NOT NULL UNIQUE,
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    text_body       TEXT    NOT NULL,
    html_body       TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);

CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'pending';
