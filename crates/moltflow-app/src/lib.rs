//! MoltFlow's application: the use cases (`services`) and what they stand on that is not a
//! transport — the credential cache and revocation, tokens, passwords, throttles and lockout
//! (`auth`), the mail outbox (`mail`), the billing providers (`billing`), the configuration and the
//! composition root ([`App`]). Its `Cargo.toml` names no HTTP server crate (axum, hyper, http,
//! tower) and no HTML one: the ways in (`moltflow-server`'s JSON API, dashboard and MCP tools)
//! depend on this crate, never the other way round, and Cargo keeps it so.

pub mod auth;
pub mod billing;
pub mod config;
pub mod mail;
pub mod services;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod wiring;
pub mod workers;

pub use config::Config;
pub use state::App;
