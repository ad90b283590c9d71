-- Syncs milestone: per-connection syncs with their lease and schedule, their runs, and the
-- records they keep. Everything hangs off a connection and goes with it (ON DELETE CASCADE).

CREATE TABLE syncs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    connection_row_id INTEGER NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    frequency_secs INTEGER NOT NULL,
    default_frequency_secs INTEGER NOT NULL,
    paused BOOLEAN NOT NULL DEFAULT 1,
    next_run_at INTEGER,
    pending TEXT CHECK (pending IN ('incremental', 'full_refresh', 'full_refresh_and_clear')),
    checkpoint TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (connection_row_id, name)
);
CREATE INDEX syncs_due ON syncs (next_run_at);

CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sync_id INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCESS', 'ERROR')),
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    added INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX sync_runs_by_sync ON sync_runs (sync_id, id);

-- One row per (connection, model, external id). `updated_at` only moves forward per
-- (connection, model) so the (updated_at, id) keyset cursor never skips a later write.
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    connection_row_id INTEGER NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    external_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    hash TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER,
    last_action TEXT NOT NULL CHECK (last_action IN ('ADDED', 'UPDATED', 'DELETED')),
    UNIQUE (connection_row_id, model, external_id)
);
CREATE INDEX records_keyset ON records (connection_row_id, model, updated_at, id);
