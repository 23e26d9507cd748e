//! Use cases: each function decides and runs one transaction; handlers only parse and answer.

pub mod audit;
pub mod auth;
pub mod sessions;
pub mod usage;
