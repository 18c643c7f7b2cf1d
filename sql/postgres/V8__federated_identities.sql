-- Sign-in with other providers. An identity is a (provider, subject) pair vouched for by an
-- OAuth 2.0 / OpenID Connect provider, linked to one account; an account has at most one identity
-- per provider. The single-use, expiring state of multi-request ceremonies (WebAuthn, and now the
-- provider round trip and a pending link) shares one table, renamed from webauthn_ceremonies.

CREATE TABLE identities (
    provider     text        NOT NULL CHECK (length(provider) <= 64),
    subject      text        NOT NULL CHECK (length(subject) <= 255),
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    PRIMARY KEY (provider, subject),
    UNIQUE (user_id, provider)
);

ALTER TABLE webauthn_ceremonies RENAME TO ceremonies;
ALTER INDEX webauthn_ceremonies_expires_at RENAME TO ceremonies_expires_at;
ALTER TABLE ceremonies DROP CONSTRAINT webauthn_ceremonies_kind_check;
ALTER TABLE ceremonies ADD CONSTRAINT ceremonies_kind_check CHECK (kind IN (
    'registration', 'second_factor', 'passwordless', 'oauth_callback', 'identity_link',
    'spent_id_token'));
