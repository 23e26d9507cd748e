//! The MoltFlow admin HTTP API as a library: `app(state)` is the router (tests call it), `serve`
//! runs it.

pub mod app;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod http_server;
pub mod mcp;
pub mod middleware;
pub mod principal;
pub mod request_context;
pub mod request_id;
pub mod routes;
pub mod serve;
pub mod startup;
pub mod state;

pub use app::app;
pub use state::AppState;
