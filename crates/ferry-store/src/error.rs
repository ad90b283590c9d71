//! The store's error type: what callers can act on (not found, conflict) kept apart from failures.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// One or more addressed rows do not exist in the environment; `keys` names them.
    #[error("{entity} not found: {}", keys.join(", "))]
    NotFound {
        /// The kind of row that was looked for (`"integration"`, `"connection"`, …).
        entity: &'static str,
        /// The keys that were not found.
        keys: Vec<String>,
    },
    /// A row with the same unique key already exists.
    #[error("{entity} already exists: {key}")]
    Conflict {
        /// The kind of row that collided.
        entity: &'static str,
        /// The key that collided.
        key: String,
    },
    /// The connection to update belongs to another Salesforce org than the new credentials.
    #[error("the connection belongs to org {existing}, the new credentials to another org")]
    OrgMismatch {
        /// The org the stored connection belongs to.
        existing: String,
    },
    /// The caller's sealing of a secret for its row failed (the vault's message).
    #[error("sealing a secret failed: {0}")]
    Seal(String),
    /// The caller no longer holds the sync's lease (it expired and another worker took it, or
    /// the run was superseded): nothing was written.
    #[error("the sync lease is no longer held by this worker")]
    LeaseLost,
    /// A records cursor that this store did not issue.
    #[error("invalid records cursor")]
    InvalidCursor,
    /// The database URL names no supported backend.
    #[error("unsupported database url (expected sqlite://…, postgres://… or a file path)")]
    UnsupportedUrl,
    /// A stored value could not be read back (for example malformed JSON in a JSON column).
    #[error("stored {column} is malformed")]
    Corrupt {
        /// The column holding the malformed value.
        column: &'static str,
        /// What went wrong while decoding it.
        #[source]
        source: serde_json::Error,
    },
    /// The SQLite file's directory could not be created.
    #[error("cannot create the database directory")]
    CreateDirectory(#[source] std::io::Error),
    /// The database driver reported an error.
    #[error("database operation failed")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// A not-found error for a single key.
    pub fn not_found(entity: &'static str, key: impl Into<String>) -> Self {
        Self::NotFound {
            entity,
            keys: vec![key.into()],
        }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`], anything else to `Database`.
pub(crate) fn conflict_or(error: sqlx::Error, entity: &'static str, key: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            entity,
            key: key.to_owned(),
        },
        _ => StoreError::Database(error),
    }
}

/// Whether a driver error is a unique-constraint violation (used to retry racing inserts).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}
