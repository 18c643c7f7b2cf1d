-- Sign-in with other providers: the same schema as PostgreSQL's V8. SQLite cannot change a CHECK
-- constraint in place, so the ceremony table is rebuilt under its new name.

CREATE TABLE identities (
    provider     TEXT    NOT NULL CHECK (length(provider) <= 64),
    subject      TEXT    NOT NULL CHECK (length(subject) <= 255),
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email        TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    PRIMARY KEY (provider, subject),
    UNIQUE (user_id, provider)
);

CREATE TABLE ceremonies (
    token_hash BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    kind       TEXT    NOT NULL CHECK (kind IN (
        'registration', 'second_factor', 'passwordless', 'oauth_callback', 'identity_link',
        'spent_id_token')),
    user_id    TEXT    REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

INSERT INTO ceremonies (token_hash, kind, user_id, state, created_at, expires_at)
    SELECT token_hash, kind, user_id, state, created_at, expires_at FROM webauthn_ceremonies;
DROP TABLE webauthn_ceremonies;
CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);
