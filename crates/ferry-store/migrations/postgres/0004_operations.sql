-- The operation log: one row per call Ferry made or relayed (proxy, sync, action); never bodies or tokens.
CREATE TABLE operations (
    id BIGSERIAL PRIMARY KEY,
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    connection_id TEXT,
    integration_key TEXT,
    org_id TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status BIGINT,
    duration_ms BIGINT NOT NULL,
    retries BIGINT NOT NULL DEFAULT 0,
    bytes_in BIGINT NOT NULL DEFAULT 0,
    bytes_out BIGINT NOT NULL DEFAULT 0,
    error_code TEXT,
    started_at BIGINT NOT NULL
);
CREATE INDEX operations_by_env ON operations (environment_id, id);
CREATE INDEX operations_by_connection ON operations (environment_id, connection_id, id);

-- Each Salesforce org's last reported API usage, shared by every Ferry process.
CREATE TABLE org_usage (
    org_id TEXT PRIMARY KEY,
    used BIGINT,
    max BIGINT,
    budget_spent BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
