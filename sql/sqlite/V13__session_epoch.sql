-- The same as PostgreSQL's V13: the count of "end every session" a sign-in's proof was checked
-- under, which must be unchanged when its session starts.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mfa_challenges ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE email_logins ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
