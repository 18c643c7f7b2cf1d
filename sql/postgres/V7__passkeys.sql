-- Passkeys (WebAuthn): several per account, each with its credential id (unique across accounts)
-- and the credential as webauthn-rs serialises it (public key, counter, flags). Ceremony state
-- lives server-side between the two requests of a ceremony, single-use and expiring.

CREATE TABLE passkeys (
    id            uuid        PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id bytea       NOT NULL UNIQUE,
    name          text        NOT NULL CHECK (length(name) <= 100),
    credential    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);

CREATE INDEX passkeys_user ON passkeys (user_id);

CREATE TABLE webauthn_ceremonies (
    token_hash bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    kind       text        NOT NULL CHECK (kind IN ('registration', 'second_factor', 'passwordless')),
    user_id    uuid        REFERENCES users (id) ON DELETE CASCADE,
    state      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies (expires_at);
