-- See sql/postgres/V14__audit_actor.sql: the admin behind an admin action.
ALTER TABLE auth_events ADD COLUMN actor_id TEXT REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX auth_events_actor ON auth_events (actor_id, created_at, id) WHERE actor_id IS NOT NULL;
