-- The name a session's engine knows it by (WAHA's session name). Existing sessions keep their
-- own id; no two sessions may bind the same engine session.
ALTER TABLE sessions ADD COLUMN engine_session TEXT NOT NULL DEFAULT '';
UPDATE sessions SET engine_session = id;
CREATE UNIQUE INDEX sessions_by_engine ON sessions (engine_session);
