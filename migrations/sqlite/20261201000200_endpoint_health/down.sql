DROP INDEX deliveries_pending_by_webhook;
ALTER TABLE webhooks DROP COLUMN cooldown_ms;
ALTER TABLE webhooks DROP COLUMN paused_until;
ALTER TABLE webhooks DROP COLUMN last_success_at;
ALTER TABLE webhooks DROP COLUMN failing_since;
ALTER TABLE webhooks DROP COLUMN consecutive_failures;
ALTER TABLE webhooks DROP COLUMN rate_limit;
ALTER TABLE webhooks DROP COLUMN disabled_reason;
