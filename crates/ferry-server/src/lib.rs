//! Ferry's server: configuration, the application, the CLI and (soon) the HTTP API and workers.

pub mod bench;
pub mod cli;
