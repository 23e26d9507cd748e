//! Where a use case was asked from: the client's address and user agent (for audit entries,
//! consent records and per-address limits) and the way in it came through. Each way in fills it
//! from what it knows; use cases never look at a request.

use std::net::IpAddr;

/// The way in a request came through; audit entries of anything but the API say which.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Channel {
    #[default]
    Api,
    /// An MCP tool call (over `/mcp` or `moltflow mcp`).
    Mcp,
    /// A form of the web dashboard.
    Dashboard,
}

impl Channel {
    /// The `via` an audit entry records; `None` for the plain API.
    pub fn audit_via(self) -> Option<&'static str> {
        match self {
            Channel::Api => None,
            Channel::Mcp => Some("mcp"),
            Channel::Dashboard => Some("dashboard"),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub channel: Channel,
}

impl Origin {
    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}
