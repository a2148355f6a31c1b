-- A webhook's rate-limit window: the epoch second of its current window and how many
-- attempts have started in it, taken atomically by whichever dispatcher starts one.
ALTER TABLE webhooks ADD COLUMN rate_window BIGINT;
ALTER TABLE webhooks ADD COLUMN rate_used INTEGER NOT NULL DEFAULT 0;
