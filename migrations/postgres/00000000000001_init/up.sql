-- Herald's schema on PostgreSQL. Only shared SQL types (text ids, bigint epoch-ms times,
-- text JSON, boolean) so one diesel schema serves this and SQLite.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    name TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_org ON api_keys (organization_id, id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    me_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_org ON sessions (organization_id, id);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    session_id TEXT,
    active BOOLEAN NOT NULL,
    custom_headers TEXT NOT NULL,
    retry_policy TEXT NOT NULL,
    retry_delay_seconds INTEGER NOT NULL,
    retry_attempts INTEGER NOT NULL,
    secret_sealed TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_by_org ON webhooks (organization_id, id);

-- The outbox and event log. `tx_id` is the inserting transaction's id: readers order by
-- (tx_id, seq) and read only below the oldest running transaction, so an event that commits
-- late can never be skipped by a cursor that already moved past its `seq`.
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL,
    session_id TEXT,
    event_type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    envelope TEXT NOT NULL,
    logged BOOLEAN NOT NULL,
    tx_id BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)
);
CREATE INDEX events_log ON events (organization_id, tx_id, seq) WHERE logged;
CREATE INDEX events_by_time ON events (created_at);
CREATE INDEX events_tail ON events (tx_id, seq) WHERE logged;

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT,
    last_attempt_at BIGINT,
    last_status_code INTEGER,
    last_error TEXT,
    lease_until BIGINT,
    lease_owner TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- Attempts made before the current budget began: a manual retry or recovery renews the
    -- budget without renumbering the attempt log.
    budget_base INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_time ON deliveries (created_at);
-- The two claim queues (first attempts, retries) and the leases in force, so a claim or a
-- wake-up time never scans the backlog of the other queue.
CREATE INDEX deliveries_due_fresh ON deliveries (next_attempt_at) WHERE status = 'pending' AND attempts = 0;
CREATE INDEX deliveries_due_retry ON deliveries (next_attempt_at) WHERE status = 'pending' AND attempts > 0;
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status_code INTEGER,
    error TEXT,
    response_body TEXT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE TABLE messages (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    from_me BOOLEAN NOT NULL,
    kind TEXT NOT NULL,
    body TEXT,
    poll TEXT,
    timestamp BIGINT NOT NULL,
    PRIMARY KEY (session_id, chat, sender, id)
);

CREATE TABLE poll_votes (
    session_id TEXT NOT NULL,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    voter TEXT NOT NULL,
    options TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, chat, sender, message_id, voter),
    FOREIGN KEY (session_id, chat, sender, message_id)
        REFERENCES messages (session_id, chat, sender, id) ON DELETE CASCADE
);

CREATE TABLE inbound_keys (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    inbound_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, inbound_id)
);
