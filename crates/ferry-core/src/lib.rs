//! Ferry domain types and rules: typed ids, secrets, provider model, error taxonomy. No I/O.

pub mod ids;
pub mod secret;
pub mod vault;
