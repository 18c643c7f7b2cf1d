-- Multi-factor authentication: the same tables as PostgreSQL's V6. Times are Unix microseconds.

CREATE TABLE mfa_factors (
    id             TEXT    PRIMARY KEY,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind           TEXT    NOT NULL CHECK (kind IN ('totp')),
    secret         BLOB    NOT NULL,
    last_used_step INTEGER NOT NULL DEFAULT -1,
    created_at     INTEGER NOT NULL,
    confirmed_at   INTEGER
);

CREATE UNIQUE INDEX mfa_factors_one_active ON mfa_factors (user_id, kind) WHERE confirmed_at IS NOT NULL;
CREATE INDEX mfa_factors_user ON mfa_factors (user_id);

CREATE TABLE mfa_recovery_codes (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BLOB    NOT NULL CHECK (length(code_hash) = 32),
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash  BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    methods     TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
);

CREATE INDEX mfa_challenges_expires_at ON mfa_challenges (expires_at);

-- Sessions opened before this migration were opened with a password at their creation.
ALTER TABLE sessions ADD COLUMN auth_methods TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE sessions ADD COLUMN authenticated_at INTEGER;
UPDATE sessions SET authenticated_at = created_at;
