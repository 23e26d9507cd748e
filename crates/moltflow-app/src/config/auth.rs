//! Signing keys and password hashing.

use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;
use super::read::Raw;

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
pub struct AuthConfig {
    /// The Ed25519 signing key (PEM or base64 seed); unset: generated and kept in the database.
    pub jwt_private_key: Option<SecretString>,
    /// Password hashes computed at once; more wait their turn.
    pub hash_concurrency: usize,
    pub hash_params: HashParams,
    /// How long the one request that reads a credential's state ahead of its expiry waits for
    /// that read before answering from the state it has (still valid). Not a setting: tests on
    /// a loaded machine lengthen it, so that a slow read there does not look like a hung one.
    pub state_refresh_wait: Duration,
}

impl AuthConfig {
    pub fn read(raw: &Raw) -> Result<AuthConfig, ConfigError> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) as u64;
        let defaults = HashParams::default();
        let hash_params = HashParams {
            memory_kib: raw.number("argon2_memory_kib", defaults.memory_kib.into(), 8, 4 * 1024 * 1024)? as u32,
            iterations: raw.number("argon2_iterations", defaults.iterations.into(), 1, 100)? as u32,
            parallelism: raw.number("argon2_parallelism", defaults.parallelism.into(), 1, 16)? as u32,
        };
        Ok(AuthConfig {
            jwt_private_key: raw.secret("jwt_private_key"),
            // One core stays free for the async workers: a login flood must not stall other routes.
            hash_concurrency: raw.number("hash_concurrency", cores.saturating_sub(1).max(1), 1, 256)? as usize,
            hash_params,
            state_refresh_wait: Duration::from_millis(250),
        })
    }
}
