//! Reading one key of the raw settings: trimmed text (empty counts as unset), a secret, or a
//! whole number within bounds. Every section reads its keys through this.

use std::collections::BTreeMap;

use secrecy::SecretString;

use super::{ConfigError, err};

/// `key → text` (keys without the `MOLTFLOW_` prefix, lower case).
pub struct Raw<'a>(pub &'a BTreeMap<String, String>);

impl Raw<'_> {
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
    }

    pub fn secret(&self, key: &str) -> Option<SecretString> {
        self.get(key).map(SecretString::from)
    }

    /// A whole number from `min` to `max`; `default` when unset.
    pub fn number(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(err(key, format!("must be a whole number from {min} to {max}, got {v:?}"))),
            },
        }
    }

    /// A comma-separated list, each item parsed by `parse` (blank items skipped).
    pub fn list<T>(&self, key: &str, parse: impl Fn(&str) -> Result<T, ConfigError>) -> Result<Vec<T>, ConfigError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse).collect(),
        }
    }
}
