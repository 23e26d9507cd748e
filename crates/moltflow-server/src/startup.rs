//! What `serve` tells the operator once it listens: where to click, which database, where mail
//! goes, which billing provider, and what to watch out for. Never a secret: database and SMTP
//! URLs lose their user info and query before they are shown.

use std::net::SocketAddr;
use std::path::Path;

use secrecy::ExposeSecret;

use moltflow_core::billing::Provider;

use moltflow_app::config::{Config, LogFormat};

pub struct Summary {
    /// The dashboard (a browser opens it).
    pub url: String,
    pub api: String,
    pub database: String,
    pub mail: String,
    pub billing: String,
    /// Where rate limits, throttles and lockouts are counted.
    pub limits: String,
    pub warnings: Vec<String>,
}

impl Summary {
    /// `redis_up`: whether the shared Redis answered at start-up (`None` without one).
    pub fn new(config: &Config, local: SocketAddr, migrations_applied: usize, redis_up: Option<bool>) -> Summary {
        let url = clickable_url(local);
        let migrated = match migrations_applied {
            0 => "schema up to date".to_owned(),
            1 => "1 migration applied".to_owned(),
            n => format!("{n} migrations applied"),
        };
        let mut warnings = Vec::new();
        if local.ip().is_unspecified() {
            warnings.push(format!("listening on every interface ({local}), not only loopback"));
        }
        if config.limits.redis_url.is_none() {
            warnings.push(
                "rate limits and login throttles are kept per node (MOLTFLOW_REDIS_URL is unset): \
                 with several nodes each allows the full rate"
                    .to_owned(),
            );
        }
        if redis_up == Some(false) {
            warnings.push(
                "Redis (MOLTFLOW_REDIS_URL) does not answer: limits count per node until it does, \
                 then they are shared again without a restart"
                    .to_owned(),
            );
        }
        if config.mail.smtp_url.is_none() {
            warnings.push(
                "no MOLTFLOW_SMTP_URL: mail is written to files and each mail's link (with its token) \
                 is logged, a development convenience; with SMTP set, no token is ever logged"
                    .to_owned(),
            );
        }
        if config.billing.provider == Provider::Local {
            warnings.push(
                "billing provider `local` grants paid plans for free (its checkout page has a Pay button): \
                 for development; set MOLTFLOW_BILLING_PROVIDER=stripe in production"
                    .to_owned(),
            );
        }
        Summary {
            api: format!("{}api/v2", url),
            url,
            database: format!("{} ({migrated})", describe_database(&config.database.url)),
            mail: describe_mail(config),
            billing: describe_billing(config),
            limits: describe_limits(config),
            warnings,
        }
    }

    /// Pretty: a short block on stdout (plain text, whatever the log filter), then the warnings as
    /// log lines. JSON: one `moltflow listening` event with the same fields, then the warnings.
    pub fn announce(&self, format: &LogFormat) {
        match format {
            LogFormat::Pretty => {
                println!("MoltFlow Admin {} is listening", env!("CARGO_PKG_VERSION"));
                println!("  open      {}  (dashboard: sign in or register; API docs at /docs)", self.url);
                println!("  API       {}", self.api);
                println!("  database  {}", self.database);
                println!("  mail      {}", self.mail);
                println!("  billing   {}", self.billing);
                println!("  limits    {}", self.limits);
            }
            LogFormat::Json => tracing::info!(
                url = %self.url, api = %self.api, database = %self.database, mail = %self.mail,
                billing = %self.billing, limits = %self.limits, "moltflow listening"
            ),
        }
        for w in &self.warnings {
            tracing::warn!("{w}");
        }
    }
}

/// `http://127.0.0.1:8080/`; an unspecified bind address is shown as the loopback one.
fn clickable_url(local: SocketAddr) -> String {
    let host = match local.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("http://{host}:{}/", local.port())
}

/// `SQLite file /abs/moltflow.db`, `SQLite in memory` or `PostgreSQL database app on db:5432 as
/// user app` (no password, no query: either may carry a secret).
pub fn describe_database(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//").split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
            return "SQLite in memory".to_owned();
        }
        return format!("SQLite file {}", absolute(Path::new(path)));
    }
    match url::Url::parse(url) {
        Ok(u) => {
            let db = u.path().trim_start_matches('/');
            let host = u.host_str().unwrap_or("localhost");
            let port = u.port().unwrap_or(5432);
            let user = if u.username().is_empty() { String::new() } else { format!(" as user {}", u.username()) };
            format!("PostgreSQL database {db} on {host}:{port}{user}")
        }
        Err(_) => "PostgreSQL".to_owned(),
    }
}

fn describe_mail(config: &Config) -> String {
    match &config.mail.smtp_url {
        Some(smtp) => match url::Url::parse(smtp.expose_secret()) {
            Ok(u) => {
                let tls = match (u.scheme(), u.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned())) {
                    ("smtps", _) => "TLS",
                    (_, Some(mode)) if mode == "required" || mode == "opportunistic" => "STARTTLS",
                    _ => "plain",
                };
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!("SMTP {}{port} ({tls})", u.host_str().unwrap_or("?"))
            }
            Err(_) => "SMTP".to_owned(),
        },
        None => format!(".eml files in {}", absolute(&config.mail.dir)),
    }
}

fn describe_billing(config: &Config) -> String {
    match config.billing.provider {
        Provider::Local => "local (checkout pages of this service; no payment is taken)".to_owned(),
        Provider::Stripe => format!("stripe ({})", config.billing.stripe_api_base),
    }
}

/// `shared in Redis at cache.internal:6379 db 0 (keys moltflow:…)` or `per node`; never the
/// password.
fn describe_limits(config: &Config) -> String {
    if config.limits.rate_limit_scale <= 0.0 {
        return "off (MOLTFLOW_RATE_LIMIT_SCALE=0)".to_owned();
    }
    let Some(url) = &config.limits.redis_url else {
        return "per node (no MOLTFLOW_REDIS_URL)".to_owned();
    };
    let at = match url::Url::parse(url.expose_secret()) {
        Ok(u) if u.scheme() == "unix" => format!("socket {}", u.path()),
        Ok(u) => {
            let db = u.path().trim_start_matches('/');
            let db = if db.is_empty() { "0" } else { db };
            format!("{}:{} db {db}", u.host_str().unwrap_or("localhost"), u.port().unwrap_or(6379))
        }
        Err(_) => "Redis".to_owned(),
    };
    format!("shared in Redis at {at} (keys {}…)", config.limits.redis_key_prefix)
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned()).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_descriptions_never_show_a_password() {
        let pg = describe_database("postgres://app:s3cret@db.internal:6432/moltflow?password=also-secret");
        assert_eq!(pg, "PostgreSQL database moltflow on db.internal:6432 as user app");
        assert!(describe_database("sqlite://moltflow.db").ends_with("/moltflow.db"));
        assert!(describe_database("sqlite:///var/lib/m.db?mode=rwc").starts_with("SQLite file /var/lib/m.db"));
        assert_eq!(describe_database("sqlite::memory:"), "SQLite in memory");
    }

    #[test]
    fn smtp_descriptions_never_show_credentials() {
        let map = [("smtp_url".to_owned(), "smtp://user:pa55@mail.example.com:587?tls=required".to_owned())];
        let config = Config::from_map(&map.into_iter().collect()).unwrap();
        assert_eq!(describe_mail(&config), "SMTP mail.example.com:587 (STARTTLS)");
    }

    #[test]
    fn limits_descriptions_never_show_the_redis_password() {
        let map = [("redis_url".to_owned(), "redis://:hunter2@cache.internal:6380/2".to_owned())];
        let config = Config::from_map(&map.into_iter().collect()).unwrap();
        assert_eq!(describe_limits(&config), "shared in Redis at cache.internal:6380 db 2 (keys moltflow:…)");
        let config = Config::from_map(&Default::default()).unwrap();
        assert_eq!(describe_limits(&config), "per node (no MOLTFLOW_REDIS_URL)");
    }

    #[test]
    fn an_unspecified_bind_address_is_shown_as_loopback() {
        assert_eq!(clickable_url("0.0.0.0:8080".parse().unwrap()), "http://127.0.0.1:8080/");
        assert_eq!(clickable_url("127.0.0.1:9000".parse().unwrap()), "http://127.0.0.1:9000/");
    }
}
