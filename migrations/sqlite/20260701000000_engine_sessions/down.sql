DROP INDEX sessions_by_engine;
ALTER TABLE sessions DROP COLUMN engine_session;
