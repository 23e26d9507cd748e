//! Use cases: each function decides and runs one transaction; handlers only parse and answer.

pub mod api_keys;
pub mod audit;
pub mod audit_queue;
pub mod auth;
pub mod billing;
pub mod invitations;
pub mod mailing;
pub mod members;
pub mod one_time;
pub mod recovery;
pub mod sessions;
pub mod tenant;
pub mod usage;
pub mod users;
pub mod verification;
