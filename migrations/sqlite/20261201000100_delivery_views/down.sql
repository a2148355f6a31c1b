DROP INDEX deliveries_by_webhook_attempt;
DROP INDEX deliveries_by_org;
