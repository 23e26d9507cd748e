//! End-to-end tests of the HTTP API: real requests against the real router and a real database.

mod common;

mod api_keys;
mod auth_login;
mod auth_register;
mod auth_sessions;
mod auth_tokens;
mod billing;
mod errors;
mod ops;
mod stripe_mock;
mod tenant;
