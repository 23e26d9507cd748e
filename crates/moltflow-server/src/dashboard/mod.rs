//! The dashboard: server-rendered pages on the use cases of `crate::services`.

pub mod chart;
pub mod csv;
pub mod forecast;
pub mod table;
pub mod usage_view;
