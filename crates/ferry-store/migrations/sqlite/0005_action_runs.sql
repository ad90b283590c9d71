-- Asynchronous action runs (`X-Async: true`): the queue workers claim from and the result any
-- process answers `GET /action/{id}` with.
CREATE TABLE action_runs (
    id TEXT PRIMARY KEY,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    connection_row_id INTEGER NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    action_name TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    output TEXT,
    error_status INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX action_runs_due ON action_runs (status, next_attempt_at);
