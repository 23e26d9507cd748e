//! The Model Context Protocol server: the admin API's use cases as tools for AI agents, over
//! streamable HTTP at `/mcp` (in `moltflow serve`) and over stdio (`moltflow mcp`, which reaches
//! the API over HTTP). Both list only the tools the API key's scopes allow.

mod direct;
pub mod endpoint;
pub mod handler;
pub mod tools;
