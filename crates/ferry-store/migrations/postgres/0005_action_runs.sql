-- Asynchronous action runs (`X-Async: true`): the queue workers claim from and the result any
-- process answers `GET /action/{id}` with.
CREATE TABLE action_runs (
    id TEXT PRIMARY KEY,
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    connection_row_id BIGINT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    action_name TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    max_retries BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    output TEXT,
    error_status BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX action_runs_due ON action_runs (status, next_attempt_at);
