-- Ending a user's sessions retires their pending sign-ins too (a login waiting for its second
-- factor, an unused sign-in mail), found by user: email_logins has its index since V9.
CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id);
