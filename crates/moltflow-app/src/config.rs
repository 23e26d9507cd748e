//! Configuration: `moltflow.toml` (optional) overlaid by `MOLTFLOW_*` environment variables.
//!
//! Every value is read as text and parsed here, so that a bad one stops start-up with one line
//! naming the variable (`MOLTFLOW_BIND: invalid socket address "x"`), or the file and key it came
//! from (`moltflow.toml: bind: …`). The keys are listed in `settings`; `sources` reads them. The
//! configuration comes in sections, each read and validated by its own module; [`Config::from_map`]
//! reads them all, so that whatever holds a `Config` holds a valid one.

pub mod auth;
pub mod billing;
pub mod limits;
pub mod mail;
mod read;
pub mod server;
pub mod settings;
pub mod sources;

use std::collections::BTreeMap;

pub use auth::{AuthConfig, HashParams};
pub use billing::BillingConfig;
pub use limits::{LimitsConfig, LogFormat, TelemetryConfig};
pub use mail::MailConfig;
pub use server::{DatabaseConfig, ServerConfig};

#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    pub billing: BillingConfig,
    pub limits: LimitsConfig,
    pub telemetry: TelemetryConfig,
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
            if let Some((_, sources::ValueSource::File(file))) = raw.get(&key) {
                e.variable = format!("{file}: {key}");
            }
            e
        })
    }

    /// Builds a configuration from `key → text` (keys without the `MOLTFLOW_` prefix, lower
    /// case): every section, each validated as it is read.
    pub fn from_map(raw: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let raw = read::Raw(raw);
        Ok(Config {
            server: ServerConfig::read(&raw)?,
            database: DatabaseConfig::read(&raw)?,
            mail: MailConfig::read(&raw)?,
            billing: BillingConfig::read(&raw)?,
            telemetry: TelemetryConfig::read(&raw)?,
            limits: LimitsConfig::read(&raw)?,
            auth: AuthConfig::read(&raw)?,
        })
    }
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
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database.url, "sqlite://moltflow.db");
        assert_eq!(c.server.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.billing.provider, moltflow_core::billing::Provider::Local);
        assert!(!c.billing.provider_explicit);
        assert_eq!(c.limits.rate_limit_scale, 1.0);
        assert_eq!(c.telemetry.log_format, LogFormat::Pretty);
        assert_eq!(c.database.max_connections, 16);
        assert_eq!(c.billing.stripe_timeout_ms, 10_000);
        assert!(c.billing.plans.get("free").is_some() && c.billing.prices.is_empty());
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
            ("plans_file", "/nonexistent/plans.toml", "MOLTFLOW_PLANS_FILE"),
            ("billing_redirect_origins", "ftp://x", "MOLTFLOW_BILLING_REDIRECT_ORIGINS"),
            ("stripe_timeout_ms", "5", "MOLTFLOW_STRIPE_TIMEOUT_MS"),
            ("db_max_connections", "0", "MOLTFLOW_DB_MAX_CONNECTIONS"),
            ("argon2_iterations", "many", "MOLTFLOW_ARGON2_ITERATIONS"),
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
        use sources::ValueSource;
        let file = ValueSource::File("moltflow.toml".into());
        let raw =
            [("bind".to_owned(), ("x".to_owned(), file)), ("log".to_owned(), ("warn".to_owned(), ValueSource::Env))];
        let e = Config::from_sources(&raw.into_iter().collect()).unwrap_err();
        assert!(e.to_string().starts_with("moltflow.toml: bind: invalid socket address"), "{e}");
        let raw = [("bind".to_owned(), ("x".to_owned(), ValueSource::Env))];
        let e = Config::from_sources(&raw.into_iter().collect()).unwrap_err();
        assert!(e.to_string().starts_with("MOLTFLOW_BIND: "), "{e}");
    }

    #[test]
    fn trusted_proxies_accept_cidrs_and_hosts() {
        let c = load(&[("trusted_proxies", "10.0.0.0/8, 127.0.0.1")]).unwrap();
        assert_eq!(c.server.trusted_proxies.len(), 2);
    }

    #[test]
    fn stripe_needs_its_secret_and_a_price_for_every_paid_plan_and_cycle() {
        let e = load(&[("billing_provider", "stripe")]).unwrap_err();
        assert_eq!(e.to_string(), "MOLTFLOW_STRIPE_SECRET_KEY: is required when MOLTFLOW_BILLING_PROVIDER=stripe");
        // The built-in catalogue carries no Stripe prices.
        let e = load(&[("billing_provider", "stripe"), ("stripe_secret_key", "sk_test_x")]).unwrap_err();
        assert!(
            e.to_string().starts_with("MOLTFLOW_PLANS_FILE: plan \"starter\" has no stripe_price_id for monthly"),
            "{e}"
        );
        let c = load(&[("billing_provider", "local")]).unwrap();
        assert!(c.billing.provider_explicit, "set, even to the default");
    }
}
