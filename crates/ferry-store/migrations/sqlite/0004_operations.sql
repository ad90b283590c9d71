-- The operation log: one row per call Ferry made or relayed (proxy, sync, action); never bodies or tokens.
CREATE TABLE operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    connection_id TEXT,
    integration_key TEXT,
    org_id TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    duration_ms INTEGER NOT NULL,
    retries INTEGER NOT NULL DEFAULT 0,
    bytes_in INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    started_at INTEGER NOT NULL
);
CREATE INDEX operations_by_env ON operations (environment_id, id);
CREATE INDEX operations_by_connection ON operations (environment_id, connection_id, id);

-- Each Salesforce org's last reported API usage, shared by every Ferry process.
CREATE TABLE org_usage (
    org_id TEXT PRIMARY KEY,
    used INTEGER,
    max INTEGER,
    budget_spent INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
