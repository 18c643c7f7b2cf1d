-- Who acted, when it is not the account the event is about: the admin behind an admin action
-- (a user updated, deleted or signed out, second factors reset, an invitation, a webhook
-- endpoint), so that "what did this admin do" is one indexed query. No foreign key: adding one
-- would check every row of what can be a large table under the migration's lock.
ALTER TABLE auth_events ADD COLUMN actor_id uuid;

-- Events written before: the admin was in details (adminId, or by for a second-factor reset),
-- and invitations and webhook endpoints were filed under the admin's own account.
UPDATE auth_events
SET actor_id = (details::jsonb ->> 'adminId')::uuid,
    details = (details::jsonb - 'adminId')::text
WHERE kind IN ('admin_user_updated', 'admin_user_deleted', 'admin_sessions_revoked')
  AND details::jsonb ->> 'adminId' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
UPDATE auth_events
SET actor_id = (details::jsonb ->> 'by')::uuid,
    details = (details::jsonb - 'by')::text
WHERE kind = 'admin_mfa_reset'
  AND details::jsonb ->> 'by' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
UPDATE auth_events
SET actor_id = user_id, user_id = NULL
WHERE kind IN ('invitation_sent', 'admin_webhook_created', 'admin_webhook_deleted')
  AND actor_id IS NULL;

CREATE INDEX auth_events_actor ON auth_events (actor_id, created_at, id) WHERE actor_id IS NOT NULL;
