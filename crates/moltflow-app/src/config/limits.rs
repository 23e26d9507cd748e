//! Rate limits and where their state is kept; logging.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::read::Raw;
use super::{ConfigError, err};

#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// Multiplies every rate limit; 0 turns them off.
    pub rate_limit_scale: f64,
    /// Requests a minute per principal, by plan (API.md §9), before scaling.
    pub rate_limits: Vec<(String, u32)>,
    /// Shared limits for every node when set (API.md §9).
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key the service writes (`moltflow:`; tests give each run its own).
    pub redis_key_prefix: String,
    /// How long one Redis call may take before this node decides alone (API.md §9).
    pub redis_timeout: Duration,
    /// How often Redis is pinged, to notice an outage and its end.
    pub redis_probe_interval: Duration,
}

impl LimitsConfig {
    pub fn read(raw: &Raw) -> Result<LimitsConfig, ConfigError> {
        let rate_limit_scale = match raw.get("rate_limit_scale") {
            None => 1.0,
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => x,
                _ => return Err(err("rate_limit_scale", format!("must be a number ≥ 0, got {v:?}"))),
            },
        };
        let rate_limits = match raw.get("rate_limits") {
            None => crate::auth::rate_limit::PLAN_RATES.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect(),
            Some(v) => parse_rate_limits(&v).ok_or_else(|| {
                err("rate_limits", format!("expected plan=requests_per_minute pairs like free=60,pro=600, got {v:?}"))
            })?,
        };
        let redis_url = raw.secret("redis_url");
        if let Some(url) = &redis_url {
            // The URL may hold a password: the message never repeats it.
            let url = url.expose_secret();
            if !(url.starts_with("redis://") || url.starts_with("unix://")) || redis::Client::open(url).is_err() {
                return Err(err(
                    "redis_url",
                    "not a Redis URL: expected redis://[:password@]host:6379[/db] or unix:///path/to/redis.sock \
                     (for TLS, run a local TLS tunnel and point this at it)"
                        .to_owned(),
                ));
            }
        }
        let redis_key_prefix = raw.get("redis_key_prefix").unwrap_or_else(|| "moltflow:".to_owned());
        if redis_key_prefix.len() > 64 || redis_key_prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("redis_key_prefix", "at most 64 characters, no spaces or control characters".to_owned()));
        }
        Ok(LimitsConfig {
            rate_limit_scale,
            rate_limits,
            redis_url,
            redis_key_prefix,
            redis_timeout: Duration::from_millis(50),
            redis_probe_interval: Duration::from_secs(1),
        })
    }
}

/// `free=60,pro=600`: every pair well formed, every rate ≥ 1.
fn parse_rate_limits(v: &str) -> Option<Vec<(String, u32)>> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (plan, n) = pair.split_once('=')?;
            let n: u32 = n.trim().parse().ok().filter(|n| *n >= 1)?;
            let plan = plan.trim();
            (!plan.is_empty()).then(|| (plan.to_owned(), n))
        })
        .collect::<Option<Vec<_>>>()
        .filter(|pairs| !pairs.is_empty())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// A tracing filter (`info,sqlx=warn`).
    pub log: String,
    pub log_format: LogFormat,
}

impl TelemetryConfig {
    pub fn read(raw: &Raw) -> Result<TelemetryConfig, ConfigError> {
        let log = raw.get("log").unwrap_or_else(|| "info".to_owned());
        if tracing_subscriber::EnvFilter::try_new(&log).is_err() {
            return Err(err("log", format!("not a tracing filter: {log:?}")));
        }
        let log_format = match raw.get("log_format").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(err("log_format", format!("must be pretty or json, got {other:?}"))),
        };
        Ok(TelemetryConfig { log, log_format })
    }
}
