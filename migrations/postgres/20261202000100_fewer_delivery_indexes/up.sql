-- Every delivery row is written three times (created, leased, settled), and each write that is
-- not a HOT update adds an entry to every index. Two indexes served no query: nothing looks
-- deliveries up by event, and the backlog gauge reads each lane's own due index instead of one
-- over all pending deliveries.
DROP INDEX deliveries_by_event;
DROP INDEX deliveries_due;
