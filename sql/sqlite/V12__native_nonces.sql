-- The same as PostgreSQL's V12 (nonces authd issues to native apps). SQLite cannot change a CHECK
-- constraint in place, so the ceremony table is rebuilt.
CREATE TABLE ceremonies_v12 (
    token_hash BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    kind       TEXT    NOT NULL CHECK (kind IN (
        'registration', 'second_factor', 'passwordless', 'oauth_callback', 'identity_link',
        'spent_id_token', 'native_nonce')),
    user_id    TEXT    REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

INSERT INTO ceremonies_v12 (token_hash, kind, user_id, state, created_at, expires_at)
    SELECT token_hash, kind, user_id, state, created_at, expires_at FROM ceremonies;
DROP TABLE ceremonies;
ALTER TABLE ceremonies_v12 RENAME TO ceremonies;
CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);
