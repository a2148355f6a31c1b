ALTER TABLE webhooks DROP COLUMN rate_used;
ALTER TABLE webhooks DROP COLUMN rate_window;
