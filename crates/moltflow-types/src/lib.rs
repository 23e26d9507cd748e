//! Request and response bodies of the MoltFlow admin API, with their OpenAPI schemas.
//!
//! Requests refuse unknown fields (`422`), as the contract asks; responses are plain data.

pub mod auth;
pub mod error;
pub mod ops;
pub mod usage;

pub use auth::*;
pub use error::*;
pub use ops::*;
pub use usage::*;
