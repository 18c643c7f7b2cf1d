-- Nonces authd issues to native apps for the ID tokens they exchange (oauth.native_nonces), kept
-- as single-use ceremonies.
ALTER TABLE ceremonies DROP CONSTRAINT ceremonies_kind_check;
ALTER TABLE ceremonies ADD CONSTRAINT ceremonies_kind_check CHECK (kind IN (
    'registration', 'second_factor', 'passwordless', 'oauth_callback', 'identity_link',
    'spent_id_token', 'native_nonce'));
