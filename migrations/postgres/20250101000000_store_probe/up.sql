-- A scratch table for the readiness probe: `/readyz` writes a row and deletes it in one
-- transaction, so a store that can no longer commit (disk full, read-only) is reported unready.
-- It is empty outside that transaction.
CREATE TABLE IF NOT EXISTS store_probe (
    id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    probed_at BIGINT NOT NULL
);
