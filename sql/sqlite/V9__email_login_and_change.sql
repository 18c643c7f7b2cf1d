-- The same schema as PostgreSQL's V9. SQLite cannot change a CHECK constraint in place, so
-- one_time_tokens is rebuilt with the new kind allowed.

CREATE TABLE email_logins (
    link_hash   BLOB    PRIMARY KEY CHECK (length(link_hash) = 32),
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   BLOB    NOT NULL CHECK (length(code_hash) = 32),
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
);

CREATE INDEX email_logins_user ON email_logins (user_id);
CREATE INDEX email_logins_expires_at ON email_logins (expires_at);

CREATE TABLE one_time_tokens_v9 (
    token_hash  BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    kind        TEXT    NOT NULL CHECK (kind IN (
        'email_verification', 'password_reset', 'invitation', 'email_change')),
    user_id     TEXT    REFERENCES users (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    metadata    TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER,
    follow_up   INTEGER NOT NULL DEFAULT 0 CHECK (follow_up IN (0, 1))
);

INSERT INTO one_time_tokens_v9
    (token_hash, kind, user_id, email, metadata, created_at, expires_at, consumed_at, follow_up)
    SELECT token_hash, kind, user_id, email, metadata, created_at, expires_at, consumed_at, follow_up
    FROM one_time_tokens;
DROP TABLE one_time_tokens;
ALTER TABLE one_time_tokens_v9 RENAME TO one_time_tokens;
CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);
CREATE INDEX one_time_tokens_user_live ON one_time_tokens (user_id, kind) WHERE consumed_at IS NULL;
