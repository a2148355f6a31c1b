-- Signing schemes and secret rotation: how a webhook signs (`waha` or `standard`), and the
-- secrets a rotation replaced that still sign until their grace ends. `previous_secrets` is a
-- JSON list of {"sealed", "until"} (each secret sealed on its own, like `secret_sealed`);
-- `previous_valid_until` is the latest `until`, readable without opening anything.
ALTER TABLE webhooks ADD COLUMN signing TEXT NOT NULL DEFAULT 'waha';
ALTER TABLE webhooks ADD COLUMN previous_secrets TEXT;
ALTER TABLE webhooks ADD COLUMN previous_valid_until BIGINT;
