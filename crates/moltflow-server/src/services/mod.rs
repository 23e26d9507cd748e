//! Use cases: each function decides and runs one transaction; handlers only parse and answer.

pub mod audit;
pub mod auth;
pub mod mailing;
pub mod one_time;
pub mod recovery;
pub mod sessions;
pub mod users;
pub mod verification;
