//! End-to-end tests of the HTTP API: real requests against the real router and a real database.

mod api_keys;
mod auth_login;
mod auth_register;
mod auth_sessions;
mod auth_tokens;
mod billing;
mod common;
mod errors;
mod faults;
mod invitations;
mod magic_link;
mod mail_outbox;
mod openapi;
mod ops;
mod password_reset;
mod smtp;
mod stripe_mock;
mod tenant;
mod usage_consume;
mod usage_events;
mod usage_reports;
mod users;
