//! Credentials: access tokens (JWT), password hashing, the caches that keep verification off the
//! database, and login throttling.

pub mod cache;
pub mod jwt;
pub mod password;
pub mod throttle;
