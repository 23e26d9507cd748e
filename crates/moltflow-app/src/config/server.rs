//! Where the service listens and is reached, and its database.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::read::Raw;
use super::{ConfigError, err};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Base of links in mails and checkout return URLs, and the JWT issuer (no trailing `/`).
    pub public_url: String,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// A request's headers must arrive within this (and an idle connection is closed after it).
    pub header_timeout: Duration,
    /// A request's body must arrive within this once its headers have.
    pub body_timeout: Duration,
}

impl ServerConfig {
    pub fn read(raw: &Raw) -> Result<ServerConfig, ConfigError> {
        let bind = match raw.get("bind") {
            Some(v) => {
                v.parse().map_err(|_| err("bind", format!("invalid socket address {v:?} (expected host:port)")))?
            }
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let public_url = raw.get("public_url").unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        let public_url = public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) || public_url.len() < 10 {
            return Err(err("public_url", format!("must be an http(s) URL, got {public_url:?}")));
        }
        let trusted_proxies = raw.list("trusted_proxies", |s| {
            parse_cidr(s).ok_or_else(|| err("trusted_proxies", format!("not a CIDR or IP: {s:?}")))
        })?;
        Ok(ServerConfig {
            bind,
            public_url,
            trusted_proxies,
            header_timeout: Duration::from_millis(raw.number("header_timeout_ms", 10_000, 50, 600_000)?),
            body_timeout: Duration::from_millis(raw.number("body_timeout_ms", 15_000, 50, 600_000)?),
        })
    }
}

impl ServerConfig {
    /// Whether only this machine can reach the bound address (IPv4-mapped loopback included).
    pub fn binds_loopback(&self) -> bool {
        match self.bind.ip() {
            std::net::IpAddr::V4(ip) => ip.is_loopback(),
            std::net::IpAddr::V6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        }
    }
}

/// `10.0.0.0/8`, or a bare address meaning that one host.
fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    /// The longest a request waits for a database connection before it answers `503`.
    pub acquire_timeout: Duration,
}

impl DatabaseConfig {
    pub fn read(raw: &Raw) -> Result<DatabaseConfig, ConfigError> {
        let url = raw.get("database_url").unwrap_or_else(|| "sqlite://moltflow.db".to_owned());
        if !["sqlite:", "postgres:", "postgresql:"].iter().any(|p| url.starts_with(p)) {
            return Err(err("database_url", "must start with sqlite:// or postgres://"));
        }
        let max_connections = raw.number("db_max_connections", 16, 1, 1000)? as u32;
        let acquire_timeout = Duration::from_millis(raw.number("db_acquire_timeout_ms", 2000, 50, 60_000)?);
        Ok(DatabaseConfig { url, max_connections, acquire_timeout })
    }
}
