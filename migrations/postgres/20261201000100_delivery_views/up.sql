-- The organization-wide delivery list (newest first) and a webhook's stats window (its
-- deliveries attempted since a time, then their attempts).
CREATE INDEX deliveries_by_org ON deliveries (organization_id, id);
CREATE INDEX deliveries_by_webhook_attempt ON deliveries (webhook_id, last_attempt_at);
