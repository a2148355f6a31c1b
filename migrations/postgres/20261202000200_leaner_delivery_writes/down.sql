DROP INDEX deliveries_by_webhook_attempt;
CREATE INDEX deliveries_by_webhook_attempt ON deliveries (webhook_id, last_attempt_at);
DROP INDEX deliveries_settled_by_time;
CREATE INDEX deliveries_by_time ON deliveries (created_at);
DELETE FROM delivery_attempts a WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id);
DELETE FROM deliveries d WHERE NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id);
ALTER TABLE delivery_attempts ADD FOREIGN KEY (delivery_id) REFERENCES deliveries (id) ON DELETE CASCADE;
ALTER TABLE deliveries ADD FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE;
