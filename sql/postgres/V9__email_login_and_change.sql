-- Passwordless sign-in by email (a link and a 6-digit code in one mail) and changing an account's
-- address (a one-time token mailed to the new address). A code is kept as an HMAC keyed with a
-- server secret, so the table alone does not give the million candidates away; each sign-in mail
-- allows a few code submissions, counted in the row. One live sign-in mail per account.

CREATE TABLE email_logins (
    link_hash   bytea       PRIMARY KEY CHECK (length(link_hash) = 32),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   bytea       NOT NULL CHECK (length(code_hash) = 32),
    attempts    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz
);

CREATE INDEX email_logins_user ON email_logins (user_id);
CREATE INDEX email_logins_expires_at ON email_logins (expires_at);

ALTER TABLE one_time_tokens DROP CONSTRAINT one_time_tokens_kind_check;
ALTER TABLE one_time_tokens ADD CONSTRAINT one_time_tokens_kind_check
    CHECK (kind IN ('email_verification', 'password_reset', 'invitation', 'email_change'));
