//! End-to-end tests of the HTTP API: real requests against the real router and a real database.

mod common;

mod auth_login;
mod auth_register;
mod auth_sessions;
mod auth_tokens;
mod errors;
mod ops;
mod usage_consume;
mod usage_events;
mod usage_reports;
