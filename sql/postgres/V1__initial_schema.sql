-- Users, sessions (one per refresh-token family) and refresh tokens (SHA-256 only).

CREATE TABLE users (
    id             uuid        PRIMARY KEY,
    email          text        NOT NULL CHECK (length(email) <= 254),
    -- The comparison key (trimmed, Unicode-lowercased by authd), so both backends agree on it.
    email_canonical text       NOT NULL,
    name           text        CHECK (length(name) <= 200),
    password_hash  text        NOT NULL,
    role           text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    email_verified boolean     NOT NULL DEFAULT false,
    locked         boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);

-- One live account per address, whatever its case; a soft-deleted row does not hold the address.
CREATE UNIQUE INDEX users_email_unique ON users (email_canonical) WHERE deleted_at IS NULL;

CREATE TABLE sessions (
    id             uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Generation of the refresh token that is current; rotations are ordered by it, never by time.
    generation     bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    user_agent     text,
    ip             text
);

CREATE INDEX sessions_user_active ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    token_hash  bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id  uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation  bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    -- Set when a rotation retired this token; the grace window counts from here.
    rotated_at  timestamptz,
    UNIQUE (session_id, generation)
);

CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
