-- Who acted, when it is not the account the event is about: the admin behind an admin action
-- (a user updated, deleted or signed out, second factors reset, an invitation, a webhook
-- endpoint), so that "what did this admin do" is one indexed query.
ALTER TABLE auth_events ADD COLUMN actor_id uuid REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX auth_events_actor ON auth_events (actor_id, created_at, id) WHERE actor_id IS NOT NULL;
