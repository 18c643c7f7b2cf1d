-- The same as PostgreSQL's V11: ending a user's sessions retires their pending sign-ins, found by
-- user.
CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id);
