-- Emailed one-time tokens (verification, reset, invitation), stored hashed, single-use, expiring;
-- and the outbox the mailer drains. A token and the mail carrying it are written in one
-- transaction, so neither exists without the other.

CREATE TABLE one_time_tokens (
    token_hash  bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    kind        text        NOT NULL CHECK (kind IN ('email_verification', 'password_reset', 'invitation')),
    user_id     uuid        REFERENCES users (id) ON DELETE CASCADE,
    email       text        NOT NULL,
    metadata    text        NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz
);

CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);

CREATE TABLE email_outbox (
    id              uuid        PRIMARY KEY,
    -- Stable across retries, so a receiver can drop a duplicate of an at-least-once delivery.
    message_id      text        NOT NULL UNIQUE,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    text_body       text        NOT NULL,
    html_body       text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);

CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'pending';
