-- Every write of a delivery row adds an entry to every index. Two indexes served no query:
-- nothing looks deliveries up by event, and the backlog gauge counts pending
-- deliveries on deliveries_pending_by_webhook (same condition) and finds the oldest due on
-- each lane's index.
DROP INDEX deliveries_by_event;
DROP INDEX deliveries_due;
