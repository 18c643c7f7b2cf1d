-- Webhooks. Operators register endpoints (in the configuration or through the admin API) for
-- kinds of audit events; each event queues one delivery per subscribed endpoint in the same
-- statement that records it, so an event is never recorded without its deliveries. The
-- dispatcher drains the deliveries like the mailer drains the outbox: claimed for a lease, sent,
-- retried with backoff, dead after the last attempt.

CREATE TABLE webhook_endpoints (
    id            uuid        PRIMARY KEY,
    url           text        NOT NULL,
    description   text,
    -- `whsec_...`, sealed by authd (AES-256-GCM, nonce first) under tokens.key_encryption_key,
    -- the endpoint's id bound in as associated data.
    sealed_secret bytea       NOT NULL,
    -- Audit event kinds, or '*' for every kind.
    events        text[]      NOT NULL CHECK (cardinality(events) > 0),
    enabled       boolean     NOT NULL DEFAULT true,
    source        text        NOT NULL CHECK (source IN ('config', 'api')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY,
    endpoint_id     uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- The audit event's id: the message id (`webhook-id`), the same at every attempt.
    event_id        uuid        NOT NULL,
    event_kind      text        NOT NULL,
    -- The JSON body, signed anew at each attempt.
    payload         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    -- The HTTP status of the last answer, if the endpoint answered.
    last_status     integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, created_at, id);
