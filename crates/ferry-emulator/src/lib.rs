//! A faithful, in-memory Salesforce emulator: OAuth 2.0, REST, Bulk API 2.0 and an admin API, served over real HTTP.
//!
//! It depends on none of Ferry's own crates on purpose: it is a second, independent reading of
//! Salesforce's documented behaviour, so a misunderstanding in Ferry's client cannot be mirrored
//! here and pass unnoticed.

pub mod clock;
pub mod ids;
pub mod org;
pub mod schema;
pub mod soql;
pub mod value;
