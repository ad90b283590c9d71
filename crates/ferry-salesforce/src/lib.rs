//! Ferry's Salesforce client: OAuth endpoints, REST, Bulk API 2.0, error classification, id and datetime helpers.

pub mod oauth;
pub mod rest;
pub mod transport;
