//! Password hashing with Argon2id, off the async runtime and bounded: a login flood queues for a
//! few hashing permits instead of starving every other request of CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::HashParams;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so that both cases cost the same.
    dummy_hash: Arc<String>,
    /// Passwords verified so far (what the lockout bounds; also `moltflow_password_checks_total`).
    checks: Arc<AtomicU64>,
}

impl PasswordHasher {
    pub fn new(cost: &HashParams, concurrency: usize) -> anyhow::Result<PasswordHasher> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let dummy_hash = hash_blocking(&params, "moltflow-dummy-password-for-timing")?;
        Ok(PasswordHasher {
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(dummy_hash),
            checks: Arc::default(),
        })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let params = self.params.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_blocking(&params, &password)).await?
    }

    /// Whether `password` matches `stored`; with no stored hash it still spends one verification.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        self.checks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("moltflow_password_checks_total").increment(1);
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.as_ref().clone(), false),
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
        })
        .await
        .unwrap_or(false);
        ok && real
    }
}

impl PasswordHasher {
    /// How many passwords this hasher has verified.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }
}

fn hash_blocking(params: &Params, password: &str) -> anyhow::Result<String> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

/// Verifications per second for `seconds`, with `threads` threads: the raw rate the benchmark
/// compares login throughput with.
pub fn measure_verify_rate(cost: &HashParams, threads: usize, seconds: f64) -> anyhow::Result<f64> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let hash = hash_blocking(&params, "benchmark-password-123")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let started = std::time::Instant::now();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let hash = hash.clone();
                s.spawn(move || {
                    let mut n = 0u64;
                    while std::time::Instant::now() < deadline {
                        let _ = Argon2::default().verify_password(b"benchmark-password-123", hash.as_str());
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    Ok(counts.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashParams {
        HashParams { memory_kib: 64, iterations: 1, parallelism: 1 }
    }

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let h = PasswordHasher::new(&cheap(), 2).unwrap();
        let stored = h.hash("correct horse").await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify("correct horse", Some(&stored)).await);
        assert!(!h.verify("wrong horse", Some(&stored)).await);
        assert!(!h.verify("moltflow-dummy-password-for-timing", None).await);
    }
}
