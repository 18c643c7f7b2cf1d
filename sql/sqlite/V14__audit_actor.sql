-- See sql/postgres/V14__audit_actor.sql: the admin behind an admin action, moved out of details
-- (and out of user_id for invitations and webhook endpoints) for the events written before.
ALTER TABLE auth_events ADD COLUMN actor_id TEXT;

UPDATE auth_events
SET actor_id = json_extract(details, '$.adminId'),
    details = json_remove(details, '$.adminId')
WHERE kind IN ('admin_user_updated', 'admin_user_deleted', 'admin_sessions_revoked')
  AND json_valid(details) AND json_type(details, '$.adminId') = 'text'
  AND length(json_extract(details, '$.adminId')) = 36;
UPDATE auth_events
SET actor_id = json_extract(details, '$.by'),
    details = json_remove(details, '$.by')
WHERE kind = 'admin_mfa_reset'
  AND json_valid(details) AND json_type(details, '$.by') = 'text'
  AND length(json_extract(details, '$.by')) = 36;
UPDATE auth_events
SET actor_id = user_id, user_id = NULL
WHERE kind IN ('invitation_sent', 'admin_webhook_created', 'admin_webhook_deleted')
  AND actor_id IS NULL;

CREATE INDEX auth_events_actor ON auth_events (actor_id, created_at, id) WHERE actor_id IS NOT NULL;
