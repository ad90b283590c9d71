//! Ferry's server: configuration, the application, the CLI, the HTTP API and (soon) workers.

pub mod actions;
pub mod api;
pub mod app;
pub mod bench;
pub mod bench_proxy;
pub mod cli;
pub mod config;
pub mod connections;
pub mod credentials;
pub mod dev;
pub mod error;
pub mod keys;
pub mod oplog;
pub mod providers;
pub mod purge;
pub mod refresher;
pub mod sealing;
pub mod serve;
pub mod state;
pub mod sync;
pub mod upstream;
pub mod usage;
pub mod webhook_targets;
pub mod webhooks;
pub mod ws;
