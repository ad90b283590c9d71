-- Connections milestone: environments, integrations, connect sessions, OAuth states, connections.
-- Times are epoch milliseconds; JSON is stored as text; secrets are opaque ciphertext.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE environments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    secret_key TEXT NOT NULL UNIQUE,
    webhook_signing_key TEXT NOT NULL,
    webhook_url TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE integrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    unique_key TEXT NOT NULL,
    provider TEXT NOT NULL,
    display_name TEXT NOT NULL,
    client_id TEXT,
    client_secret BLOB,
    scopes TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, unique_key)
);

CREATE TABLE connections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    integration_id INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    connection_config TEXT NOT NULL,
    metadata TEXT,
    tags TEXT NOT NULL,
    end_user TEXT,
    end_user_id TEXT,
    credentials BLOB NOT NULL,
    expires_at INTEGER,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth')),
    errors TEXT NOT NULL DEFAULT '[]',
    sf_org_id TEXT,
    sf_user_id TEXT,
    refresh_fence INTEGER NOT NULL DEFAULT 0,
    refresh_lease_owner TEXT,
    refresh_lease_until INTEGER,
    last_fetched_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, integration_id, connection_id)
);

CREATE INDEX connections_by_end_user ON connections (environment_id, end_user_id);
CREATE INDEX connections_by_created ON connections (environment_id, created_at DESC, id DESC);
-- One connection per (org, user, end user) within an integration: reconnecting dedupes onto it.
CREATE UNIQUE INDEX connections_by_org_user ON connections
    (environment_id, integration_id, sf_org_id, sf_user_id, COALESCE(end_user_id, ''))
    WHERE sf_org_id IS NOT NULL AND sf_user_id IS NOT NULL;

CREATE TABLE connect_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    end_user TEXT,
    organization TEXT,
    allowed_integrations TEXT,
    integrations_config_defaults TEXT,
    tags TEXT NOT NULL,
    reconnect_connection_id INTEGER REFERENCES connections (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE oauth_states (
    state TEXT PRIMARY KEY,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    integration_id INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    connect_session_id INTEGER REFERENCES connect_sessions (id) ON DELETE CASCADE,
    connection_id TEXT,
    pkce_verifier BLOB NOT NULL,
    ws_client_id TEXT,
    connection_config TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
