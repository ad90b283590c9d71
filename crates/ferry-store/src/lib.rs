//! Ferry persistence ports with SQLite and PostgreSQL implementations and their migrations.
