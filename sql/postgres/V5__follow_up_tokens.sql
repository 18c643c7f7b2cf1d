-- A follow-up token (what POST /auth/tokens/validate sets in the one_time_token cookie) authorises
-- the next step only; it is never exchanged for another one. Outstanding tokens of a user are
-- looked up by (user, kind) when a password change retires every reset link.
ALTER TABLE one_time_tokens ADD COLUMN follow_up boolean NOT NULL DEFAULT false;
CREATE INDEX one_time_tokens_user_live ON one_time_tokens (user_id, kind) WHERE consumed_at IS NULL;
