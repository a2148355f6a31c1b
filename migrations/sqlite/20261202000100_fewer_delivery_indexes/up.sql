-- Every write of a delivery row adds an entry to every index. Two indexes served no query:
-- nothing looks deliveries up by event, and the backlog gauge reads each lane's own due index
-- instead of one over all pending deliveries.
DROP INDEX deliveries_by_event;
DROP INDEX deliveries_due;
