//! The catalogue of settings: every key `moltflow` reads (`bind` in `moltflow.toml`,
//! `MOLTFLOW_BIND` in the environment), its default and one line of help. Unknown keys are
//! judged against it and `moltflow serve --help` prints it, so a new setting is added here too
//! (a unit test below fails when a configuration section reads a key missing from this list).

pub struct Setting {
    /// The key in `moltflow.toml`; the variable is `MOLTFLOW_` and the key in upper case.
    pub key: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

impl Setting {
    pub fn variable(&self) -> String {
        format!("MOLTFLOW_{}", self.key.to_uppercase())
    }
}

const fn s(key: &'static str, default: &'static str, help: &'static str) -> Setting {
    Setting { key, default, help }
}

pub const SETTINGS: &[Setting] = &[
    s("bind", "127.0.0.1:8080", "address to listen on"),
    s("database_url", "sqlite://moltflow.db", "SQLite file (created if missing) or postgres://user@host/db"),
    s("public_url", "http://127.0.0.1:8080", "base of links in mails and checkout return URLs; the JWT issuer"),
    s("smtp_url", "unset", "smtp://host:port, smtp://user:pass@host:587?tls=required or smtps://…; unset: mail files"),
    s("mail_dir", "./mail", "where mail files go without SMTP"),
    s("mail_from", "MoltFlow <no-reply@localhost>", "sender of every mail"),
    s("mail_templates_dir", "unset", "directory of mail templates replacing the built-in ones"),
    s("billing_provider", "local", "local (free checkout pages, for development) or stripe"),
    s("stripe_secret_key", "unset", "Stripe secret key (required with billing_provider=stripe)"),
    s("stripe_webhook_secret", "unset", "signing secret of the Stripe webhook endpoint"),
    s("stripe_api_base", "https://api.stripe.com", "Stripe API base URL"),
    s("stripe_timeout_ms", "10000", "how long one Stripe request may take"),
    s("billing_redirect_origins", "unset", "origins besides the public URL's that checkout may return to"),
    s("plans_file", "unset", "TOML file replacing the built-in plan catalogue"),
    s("redis_url", "unset", "redis://host:6379/0: rate limits, throttles and lockouts shared by every node"),
    s("redis_key_prefix", "moltflow:", "prefix of every Redis key (deployments sharing one Redis differ here)"),
    s(
        "jwt_private_key",
        "unset",
        "Ed25519 signing key (PEM or base64 seed); unset: generated and kept in the database",
    ),
    s("log", "info", "tracing filter, e.g. info,sqlx=warn"),
    s("log_format", "pretty", "pretty or json"),
    s("rate_limit_scale", "1", "multiplies every rate limit; 0 turns them off"),
    s("trusted_proxies", "unset", "comma-separated CIDRs whose X-Forwarded-For is believed"),
    s("rate_limits", "free=60,starter=300,pro=600,business=3000", "requests a minute per principal, by plan"),
    s("db_max_connections", "16", "database pool size"),
    s("db_acquire_timeout_ms", "2000", "how long a request waits for a database connection before answering 503"),
    s(
        "header_timeout_ms",
        "10000",
        "a request's headers must arrive within this (408); idle connections close after it",
    ),
    s("body_timeout_ms", "15000", "a request's body must arrive within this after its headers (408)"),
    s("hash_concurrency", "CPUs - 1 (at least 1)", "password hashes computed at once"),
    s("argon2_memory_kib", "19456", "Argon2id memory cost for new hashes"),
    s("argon2_iterations", "2", "Argon2id iterations"),
    s("argon2_parallelism", "1", "Argon2id lanes"),
];

/// Other tools' variables under the `MOLTFLOW_` prefix, never read by the service and never
/// warned about: `MOLTFLOW_TEST_*` belongs to the test suite, `MOLTFLOW_CI_*` to `.ci/run`.
pub const FOREIGN_PREFIXES: &[&str] = &["test_", "ci_"];

/// The client's variables (`moltflow keys …`, `moltflow mcp`): set beside a running service, they
/// are not misspelt settings.
pub const CLIENT_VARIABLES: &[&str] = &["api_url", "api_key"];

pub fn is_known(key: &str) -> bool {
    SETTINGS.iter().any(|s| s.key == key)
}

pub fn is_foreign(key: &str) -> bool {
    FOREIGN_PREFIXES.iter().any(|p| key.starts_with(p)) || CLIENT_VARIABLES.contains(&key)
}

/// The known key a misspelt one most likely meant, if any is close.
pub fn closest(key: &str) -> Option<&'static str> {
    let key = key.strip_prefix("moltflow_").unwrap_or(key);
    if is_known(key) {
        return SETTINGS.iter().find(|s| s.key == key).map(|s| s.key);
    }
    let (best, distance) = SETTINGS.iter().map(|s| (s.key, strsim::levenshtein(key, s.key))).min_by_key(|(_, d)| *d)?;
    // One or two typos, or up to a third of the word for longer keys.
    (distance <= 2 || distance * 3 <= key.len()).then_some(best)
}

/// The list `moltflow serve --help` prints under the usage line.
pub fn help_text() -> String {
    let width = SETTINGS.iter().map(|s| s.variable().len()).max().unwrap_or(0);
    let mut out = String::from(
        "Settings: MOLTFLOW_* environment variables, or the same keys in lower case in ./moltflow.toml \
         (the environment wins). Variable, default, meaning:\n\n",
    );
    for s in SETTINGS {
        out.push_str(&format!("  {:width$}  {}\n  {:width$}    {}\n", s.variable(), s.default, "", s.help));
    }
    out.push_str("\nMOLTFLOW_TEST_* and MOLTFLOW_CI_* belong to the test suite and CI; MOLTFLOW_API_URL and");
    out.push_str("\nMOLTFLOW_API_KEY to the client commands (keys, usage, mcp, …); the service ignores them.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_get_a_suggestion_and_strangers_none() {
        assert_eq!(closest("bindd"), Some("bind"));
        assert_eq!(closest("databse_url"), Some("database_url"));
        assert_eq!(closest("moltflow_bind"), Some("bind"));
        assert_eq!(closest("log_fromat"), Some("log_format"));
        assert_eq!(closest("completely_unrelated_thing"), None);
    }

    #[test]
    fn every_key_the_configuration_reads_is_in_the_catalogue() {
        // Every section reads its keys through `read::Raw`.
        let source = [
            include_str!("server.rs"),
            include_str!("auth.rs"),
            include_str!("mail.rs"),
            include_str!("billing.rs"),
            include_str!("limits.rs"),
        ]
        .concat();
        let mut read = Vec::new();
        for call in ["get(\"", "secret(\"", "number(\"", "list(\"", "err(\""] {
            for piece in source.split(call).skip(1) {
                if let Some(key) = piece.split('"').next()
                    && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    read.push(key.to_owned());
                }
            }
        }
        assert!(read.len() > 20, "the scan found the reads: {read:?}");
        for key in read {
            assert!(is_known(&key), "`{key}` is read by Config::from_map but missing from SETTINGS");
        }
    }

    #[test]
    fn the_rate_limit_default_is_the_plan_rates() {
        let rates: Vec<String> =
            crate::auth::rate_limit::PLAN_RATES.iter().map(|(plan, n)| format!("{plan}={n}")).collect();
        let listed = SETTINGS.iter().find(|s| s.key == "rate_limits").map(|s| s.default);
        assert_eq!(listed, Some(rates.join(",").as_str()));
    }
}
