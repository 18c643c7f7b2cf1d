-- Asymmetric signing keys for access tokens. The private part is encrypted by authd (AES-256-GCM,
-- nonce first) under tokens.key_encryption_key; the public JWK is published as is.
CREATE TABLE signing_keys (
    kid         text        PRIMARY KEY,
    algorithm   text        NOT NULL,
    private_key bytea       NOT NULL,
    public_jwk  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
