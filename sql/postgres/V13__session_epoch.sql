-- "End every session of this user" counts up session_epoch. A pending sign-in keeps the count
-- its proof was checked under, and a session starts only while the user's count is unchanged:
-- a password checked, a second step or a sign-in mail used just before a reset or "sign out
-- everywhere" cannot open a session just after it.
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mfa_challenges ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE email_logins ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
