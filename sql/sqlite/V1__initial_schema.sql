-- The embedded schema: the same tables as PostgreSQL's. Ids are UUID text, times are Unix
-- microseconds (UTC), token hashes are 32-byte blobs.

CREATE TABLE users (
    id              TEXT    PRIMARY KEY,
    email           TEXT    NOT NULL CHECK (length(email) <= 254),
    email_canonical TEXT    NOT NULL,
    name            TEXT    CHECK (length(name) <= 200),
    password_hash   TEXT    NOT NULL,
    role            TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    email_verified  INTEGER NOT NULL DEFAULT 0,
    locked          INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);

CREATE UNIQUE INDEX users_email_unique ON users (email_canonical) WHERE deleted_at IS NULL;

CREATE TABLE sessions (
    id             TEXT    PRIMARY KEY,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    generation     INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT,
    user_agent     TEXT,
    ip             TEXT
);

CREATE INDEX sessions_user_active ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    token_hash  BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id  TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER,
    UNIQUE (session_id, generation)
);

CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
