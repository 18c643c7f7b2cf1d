-- Multi-factor authentication: TOTP factors (secrets sealed with tokens.key_encryption_key),
-- recovery codes (SHA-256 only), the pending second step of a login, and what each session was
-- authenticated with (for `amr`, `aal` and step-up).

CREATE TABLE mfa_factors (
    id             uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind           text        NOT NULL CHECK (kind IN ('totp')),
    -- AES-256-GCM nonce || ciphertext || tag; the factor id is the associated data.
    secret         bytea       NOT NULL,
    -- The last time step a code was accepted for: a code works once, a later step only after it.
    last_used_step bigint      NOT NULL DEFAULT -1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- NULL until a first code confirms the enrolment.
    confirmed_at   timestamptz
);

CREATE UNIQUE INDEX mfa_factors_one_active ON mfa_factors (user_id, kind) WHERE confirmed_at IS NOT NULL;
CREATE INDEX mfa_factors_user ON mfa_factors (user_id);

CREATE TABLE mfa_recovery_codes (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea       NOT NULL CHECK (length(code_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash  bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The methods the first step proved (space-separated), carried into the session.
    methods     text        NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz
);

CREATE INDEX mfa_challenges_expires_at ON mfa_challenges (expires_at);

-- Sessions opened before this migration were opened with a password at their creation.
ALTER TABLE sessions ADD COLUMN auth_methods text NOT NULL DEFAULT 'pwd';
ALTER TABLE sessions ADD COLUMN authenticated_at timestamptz;
UPDATE sessions SET authenticated_at = created_at;
ALTER TABLE sessions ALTER COLUMN authenticated_at SET DEFAULT now();
ALTER TABLE sessions ALTER COLUMN authenticated_at SET NOT NULL;
