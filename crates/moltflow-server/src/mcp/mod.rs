//! The Model Context Protocol server: the admin API's use cases as tools for AI agents, over
//! streamable HTTP at `/mcp` (in `moltflow serve`, running the use cases in process) and over
//! stdio (`moltflow mcp`, which reaches the API over HTTP). Both serve the one table in `tools`
//! and list only the tools the API key's scopes allow.

pub mod direct;
pub mod endpoint;
pub mod handler;
pub mod tools;
