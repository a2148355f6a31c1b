-- Endpoint health: why a webhook was disabled, its rate limit, and the state of its deliveries
-- (the failure streak, the last success, the circuit breaker), written by the dispatcher in the
-- transaction that records attempts.
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;
ALTER TABLE webhooks ADD COLUMN rate_limit INTEGER;
ALTER TABLE webhooks ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN failing_since BIGINT;
ALTER TABLE webhooks ADD COLUMN last_success_at BIGINT;
ALTER TABLE webhooks ADD COLUMN paused_until BIGINT;
ALTER TABLE webhooks ADD COLUMN cooldown_ms BIGINT;
-- Holding and releasing a paused webhook's deliveries.
CREATE INDEX deliveries_pending_by_webhook ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
