//! Credentials: access tokens (JWT), password hashing, the caches that keep verification off the
//! database, `last_used_at` bookkeeping, and rate limits (per node, or shared through Redis).

pub mod cache;
mod cached_state;
pub mod failed_auth;
pub mod jwt;
pub mod last_used;
pub mod listener;
pub mod lockout;
pub mod password;
pub mod rate_limit;
pub mod revocation;
pub mod shared;
pub mod staleness;
pub mod store;
pub mod throttle;
