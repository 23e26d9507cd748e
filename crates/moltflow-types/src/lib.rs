//! Request and response bodies of the MoltFlow admin API, with their OpenAPI schemas.
//!
//! Requests refuse unknown fields (`422`), as the contract asks; responses are plain data.

pub mod account;
pub mod api_keys;
pub mod auth;
pub mod billing;
pub mod error;
pub mod ops;
pub mod tenant;
pub mod usage;

pub use account::*;
pub use api_keys::*;
pub use auth::*;
pub use billing::*;
pub use error::*;
pub use ops::*;
pub use tenant::*;
pub use usage::*;
