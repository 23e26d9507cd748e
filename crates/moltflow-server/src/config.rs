//! Configuration: `moltflow.toml` (optional) overlaid by `MOLTFLOW_*` environment variables.
//!
//! Every value is read as text and parsed here, so that a bad one stops start-up with one line
//! naming the variable (`MOLTFLOW_BIND: invalid socket address "x"`), or the file and key it came
//! from (`moltflow.toml: bind: …`). The keys are listed in `settings`; `sources` reads them.

pub mod settings;
pub mod sources;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Argon2id cost. The defaults are the contract's; tests lower them to stay fast.
#[derive(Clone, Debug)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub public_url: String,
    pub smtp_url: Option<SecretString>,
    pub mail_dir: PathBuf,
    pub mail_from: String,
    /// A directory whose files replace the built-in mail templates of the same name.
    pub mail_templates_dir: Option<PathBuf>,
    /// How often the outbox worker looks for due mail when nothing wakes it (not an env variable:
    /// tests shorten it).
    pub mail_poll_interval: Duration,
    /// The first retry delay of a failed delivery; each further failure doubles it (up to 15 min).
    pub mail_backoff_base: Duration,
    pub billing_provider: String,
    /// Whether `billing_provider` was set (environment or moltflow.toml) rather than defaulted.
    pub billing_provider_explicit: bool,
    pub stripe_secret_key: Option<SecretString>,
    pub stripe_webhook_secret: Option<SecretString>,
    pub stripe_api_base: String,
    /// How long one Stripe request may take before it is retried or given up.
    pub stripe_timeout_ms: u64,
    /// Origins (besides the public URL's) that checkout and portal may redirect to.
    pub billing_redirect_origins: Vec<String>,
    pub plans_file: Option<PathBuf>,
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key the service writes (`moltflow:`; tests give each run its own).
    pub redis_key_prefix: String,
    /// How long one Redis call may take before this node decides alone (API.md §9).
    pub redis_timeout: Duration,
    /// How often Redis is pinged, to notice an outage and its end.
    pub redis_probe_interval: Duration,
    pub jwt_private_key: Option<SecretString>,
    pub log: String,
    pub log_format: LogFormat,
    /// Multiplies every rate limit; 0 turns them off.
    pub rate_limit_scale: f64,
    pub trusted_proxies: Vec<IpNet>,
    /// Requests a minute per principal, by plan (API.md §9), before scaling.
    pub rate_limits: Vec<(String, u32)>,
    pub db_max_connections: u32,
    /// The longest a request waits for a database connection before it answers `503`.
    pub db_acquire_timeout: Duration,
    /// A request's headers must arrive within this (and an idle connection is closed after it).
    pub header_timeout: Duration,
    /// A request's body must arrive within this once its headers have.
    pub body_timeout: Duration,
    /// Password hashes computed at once; more wait their turn.
    pub hash_concurrency: usize,
    pub hash_params: HashParams,
}

/// One line naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { variable: format!("MOLTFLOW_{}", key.to_uppercase()), message: message.into() }
}

/// The file read from the working directory, if present.
pub const CONFIG_FILE: &str = "moltflow.toml";

/// A configuration and what the operator should hear about it (unknown variables).
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads `moltflow.toml` from the working directory (if present) and the environment.
    pub fn load() -> Result<Loaded, ConfigError> {
        let mut raw = sources::read_file(std::path::Path::new(CONFIG_FILE))?;
        let (env, warnings) = sources::read_env(std::env::vars_os())?;
        raw.extend(env);
        let config = Self::from_sources(&raw)?;
        Ok(Loaded { config, warnings })
    }

    /// Like `from_map`, but an error about a value from a file names the file and its key.
    pub fn from_sources(raw: &sources::RawSettings) -> Result<Config, ConfigError> {
        let map = raw.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect();
        Self::from_map(&map).map_err(|mut e| {
            let key = e.variable.strip_prefix("MOLTFLOW_").unwrap_or_default().to_lowercase();
            if let Some((_, sources::Origin::File(file))) = raw.get(&key) {
                e.variable = format!("{file}: {key}");
            }
            e
        })
    }

    /// Builds a configuration from `key → text` (keys without the `MOLTFLOW_` prefix, lower case).
    pub fn from_map(raw: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let get = |k: &str| raw.get(k).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let secret = |k: &str| get(k).map(SecretString::from);

        let bind = match get("bind") {
            Some(v) => {
                v.parse().map_err(|_| err("bind", format!("invalid socket address {v:?} (expected host:port)")))?
            }
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let database_url = get("database_url").unwrap_or_else(|| "sqlite://moltflow.db".to_owned());
        if !["sqlite:", "postgres:", "postgresql:"].iter().any(|p| database_url.starts_with(p)) {
            return Err(err("database_url", "must start with sqlite:// or postgres://"));
        }
        let public_url = get("public_url").unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        let public_url = public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) || public_url.len() < 10 {
            return Err(err("public_url", format!("must be an http(s) URL, got {public_url:?}")));
        }
        let smtp_url = get("smtp_url");
        if let Some(u) = &smtp_url {
            if !(u.starts_with("smtp://") || u.starts_with("smtps://")) {
                return Err(err("smtp_url", "must start with smtp:// or smtps://"));
            }
            // The message names the scheme rule only: the URL may carry a password.
            if lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(u).is_err() {
                return Err(err(
                    "smtp_url",
                    "not a usable SMTP URL (smtp://[user:pass@]host[:port][?tls=required] or smtps://…)",
                ));
            }
        }
        let mail_from = get("mail_from").unwrap_or_else(|| "MoltFlow <no-reply@localhost>".to_owned());
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(err("mail_from", format!("not a mailbox like \"Name <addr@host>\": {mail_from:?}")));
        }
        let mail_templates_dir = get("mail_templates_dir").map(PathBuf::from);
        if let Some(d) = &mail_templates_dir
            && !d.is_dir()
        {
            return Err(err("mail_templates_dir", format!("no such directory: {}", d.display())));
        }
        let billing_provider = get("billing_provider").unwrap_or_else(|| "local".to_owned());
        if !matches!(billing_provider.as_str(), "local" | "stripe") {
            return Err(err("billing_provider", format!("must be local or stripe, got {billing_provider:?}")));
        }
        if billing_provider == "stripe" && get("stripe_secret_key").is_none() {
            return Err(err("stripe_secret_key", "is required when MOLTFLOW_BILLING_PROVIDER=stripe"));
        }
        let log = get("log").unwrap_or_else(|| "info".to_owned());
        if tracing_subscriber::EnvFilter::try_new(&log).is_err() {
            return Err(err("log", format!("not a tracing filter: {log:?}")));
        }
        let log_format = match get("log_format").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(err("log_format", format!("must be pretty or json, got {other:?}")));
            }
        };
        let rate_limit_scale = match get("rate_limit_scale") {
            None => 1.0,
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => x,
                _ => {
                    return Err(err("rate_limit_scale", format!("must be a number ≥ 0, got {v:?}")));
                }
            },
        };
        let trusted_proxies = match get("trusted_proxies") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| parse_cidr(s).ok_or_else(|| err("trusted_proxies", format!("not a CIDR or IP: {s:?}"))))
                .collect::<Result<_, _>>()?,
        };
        let rate_limits = match get("rate_limits") {
            None => crate::auth::rate_limit::PLAN_RATES.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect(),
            Some(v) => parse_rate_limits(&v).ok_or_else(|| {
                err("rate_limits", format!("expected plan=requests_per_minute pairs like free=60,pro=600, got {v:?}"))
            })?,
        };
        let number = |k: &str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            match get(k) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(err(k, format!("must be a whole number from {min} to {max}, got {v:?}"))),
                },
            }
        };
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) as u64;
        let defaults = HashParams::default();
        let hash_params = HashParams {
            memory_kib: number("argon2_memory_kib", defaults.memory_kib.into(), 8, 4 * 1024 * 1024)? as u32,
            iterations: number("argon2_iterations", defaults.iterations.into(), 1, 100)? as u32,
            parallelism: number("argon2_parallelism", defaults.parallelism.into(), 1, 16)? as u32,
        };
        let stripe_api_base = get("stripe_api_base").unwrap_or_else(|| "https://api.stripe.com".to_owned());
        let billing_redirect_origins = match get("billing_redirect_origins") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    url::Url::parse(s)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                        .map(|u| u.origin().ascii_serialization())
                        .ok_or_else(|| err("billing_redirect_origins", format!("not an http(s) origin: {s:?}")))
                })
                .collect::<Result<_, _>>()?,
        };
        let redis_url = secret("redis_url");
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
        let redis_key_prefix = get("redis_key_prefix").unwrap_or_else(|| "moltflow:".to_owned());
        if redis_key_prefix.len() > 64 || redis_key_prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("redis_key_prefix", "at most 64 characters, no spaces or control characters"));
        }
        let plans_file = get("plans_file").map(PathBuf::from);
        if let Some(p) = &plans_file
            && !p.is_file()
        {
            return Err(err("plans_file", format!("no such file: {}", p.display())));
        }
        Ok(Config {
            bind,
            database_url,
            public_url,
            smtp_url: smtp_url.map(SecretString::from),
            mail_dir: PathBuf::from(get("mail_dir").unwrap_or_else(|| "./mail".to_owned())),
            mail_from,
            mail_templates_dir,
            mail_poll_interval: Duration::from_secs(1),
            mail_backoff_base: Duration::from_secs(1),
            billing_provider,
            billing_provider_explicit: get("billing_provider").is_some(),
            stripe_secret_key: secret("stripe_secret_key"),
            stripe_webhook_secret: secret("stripe_webhook_secret"),
            stripe_api_base,
            stripe_timeout_ms: number("stripe_timeout_ms", 10_000, 100, 120_000)?,
            billing_redirect_origins,
            plans_file,
            redis_url,
            redis_key_prefix,
            redis_timeout: Duration::from_millis(50),
            redis_probe_interval: Duration::from_secs(1),
            jwt_private_key: secret("jwt_private_key"),
            log,
            log_format,
            rate_limit_scale,
            trusted_proxies,
            rate_limits,
            db_max_connections: number("db_max_connections", 16, 1, 1000)? as u32,
            db_acquire_timeout: Duration::from_millis(number("db_acquire_timeout_ms", 2000, 50, 60_000)?),
            header_timeout: Duration::from_millis(number("header_timeout_ms", 10_000, 50, 600_000)?),
            body_timeout: Duration::from_millis(number("body_timeout_ms", 15_000, 50, 600_000)?),
            // One core stays free for the async workers: a login flood must not stall other routes.
            hash_concurrency: number("hash_concurrency", cores.saturating_sub(1).max(1), 1, 256)? as usize,
            hash_params,
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

/// `10.0.0.0/8`, or a bare address meaning that one host.
fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_map(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = load(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://moltflow.db");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.billing_provider, "local");
        assert_eq!(c.rate_limit_scale, 1.0);
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v, var) in [
            ("bind", "nope", "MOLTFLOW_BIND"),
            ("database_url", "mysql://x", "MOLTFLOW_DATABASE_URL"),
            ("log_format", "xml", "MOLTFLOW_LOG_FORMAT"),
            ("rate_limit_scale", "-1", "MOLTFLOW_RATE_LIMIT_SCALE"),
            ("trusted_proxies", "10.0.0.0/99", "MOLTFLOW_TRUSTED_PROXIES"),
            ("billing_provider", "paypal", "MOLTFLOW_BILLING_PROVIDER"),
            ("public_url", "ftp://x", "MOLTFLOW_PUBLIC_URL"),
            ("rate_limits", "free=fast", "MOLTFLOW_RATE_LIMITS"),
            ("rate_limits", "free=0", "MOLTFLOW_RATE_LIMITS"),
            ("smtp_url", "http://mail.example.com", "MOLTFLOW_SMTP_URL"),
            ("smtp_url", "smtp://h?tls=sometimes", "MOLTFLOW_SMTP_URL"),
            ("mail_from", "no address", "MOLTFLOW_MAIL_FROM"),
            ("mail_templates_dir", "/nonexistent/templates", "MOLTFLOW_MAIL_TEMPLATES_DIR"),
        ] {
            let e = load(&[(k, v)]).unwrap_err();
            assert_eq!(e.variable, var);
            assert!(e.to_string().starts_with(var), "{e}");
        }
    }

    #[test]
    fn smtp_urls_of_every_documented_form_are_accepted() {
        for url in ["smtp://127.0.0.1:2525", "smtp://u:p@mail.example.com:587?tls=required", "smtps://mail.example.com"]
        {
            assert!(load(&[("smtp_url", url)]).is_ok(), "{url}");
        }
    }

    #[test]
    fn bad_values_from_the_file_name_the_file_and_key() {
        use sources::Origin;
        let file = Origin::File("moltflow.toml".into());
        let raw = [("bind".to_owned(), ("x".to_owned(), file)), ("log".to_owned(), ("warn".to_owned(), Origin::Env))];
        let e = Config::from_sources(&raw.into_iter().collect()).unwrap_err();
        assert!(e.to_string().starts_with("moltflow.toml: bind: invalid socket address"), "{e}");
        let raw = [("bind".to_owned(), ("x".to_owned(), Origin::Env))];
        let e = Config::from_sources(&raw.into_iter().collect()).unwrap_err();
        assert!(e.to_string().starts_with("MOLTFLOW_BIND: "), "{e}");
    }

    #[test]
    fn trusted_proxies_accept_cidrs_and_hosts() {
        let c = load(&[("trusted_proxies", "10.0.0.0/8, 127.0.0.1")]).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
    }
}
