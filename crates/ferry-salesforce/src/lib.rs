//! Ferry's Salesforce client: OAuth endpoints, REST, Bulk API 2.0, error classification, id and datetime helpers.

pub mod bulk;
pub mod data;
pub mod oauth;
pub mod query;
pub mod rest;
pub mod transport;
