ALTER TABLE webhooks DROP COLUMN previous_valid_until;
ALTER TABLE webhooks DROP COLUMN previous_secrets;
ALTER TABLE webhooks DROP COLUMN signing;
