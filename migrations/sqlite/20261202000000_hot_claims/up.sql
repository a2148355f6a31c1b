-- Lapsed leases are found by the dispatchers' periodic re-check; nothing reads this index.
DROP INDEX deliveries_leased;
