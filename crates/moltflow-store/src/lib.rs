//! Persistence for MoltFlow on SQLite or PostgreSQL with one set of SQL.
//!
//! Every query is written once and run on whichever backend the URL chose: store functions take
//! anything that lends a connection ([`AsDbConn`]: a pooled connection or a transaction) and
//! [`on_conn!`] compiles the body for both arms. Portability rules: `$n` placeholders, times as
//! epoch milliseconds from Rust, `RETURNING` and `ON CONFLICT` only in forms both accept.

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod billing;
mod db;
mod error;
pub mod invitations;
pub mod mail;
mod nodelay;
pub mod sessions;
pub mod signals;
pub mod signing_keys;
pub mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod usage;
pub mod web_sessions;

pub use db::{AsDbConn, Backend, Conn, DbConn, PoolSettings, Store, Tx};
pub use error::{Result, StoreError, StoreErrorKind};
