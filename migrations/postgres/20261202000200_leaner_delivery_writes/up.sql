-- Each delivery is written at least twice (created; settled) and each attempt once. Measured
-- with 10 webhooks under a closed loop, foreign-key checks were a tenth of Postgres's time
-- (one lookup per delivery and per attempt written) and index entries a third.
--
-- The foreign keys go: writers of deliveries hold their webhooks `FOR KEY SHARE` once per
-- transaction instead, and whoever deletes deliveries (a webhook's deletion, pruning) deletes
-- their attempts in the same transaction.
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_webhook_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_delivery_id_fkey;
-- Two indexes only ever serve settled or attempted deliveries, so they no longer take an entry
-- for every delivery created: pruning looks for settled deliveries by age, the stats window
-- for attempted ones by webhook.
DROP INDEX deliveries_by_time;
CREATE INDEX deliveries_settled_by_time ON deliveries (created_at) WHERE status <> 'pending';
DROP INDEX deliveries_by_webhook_attempt;
CREATE INDEX deliveries_by_webhook_attempt ON deliveries (webhook_id, last_attempt_at)
    WHERE last_attempt_at IS NOT NULL;
