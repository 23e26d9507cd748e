//! Password hashing with Argon2id, off the async runtime and bounded: a login flood queues for a
//! few hashing permits instead of starving every other request of CPU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use moltflow_core::secret::constant_time_eq;
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
    /// Argon2 working memory (~19 MiB each at the default cost), one per permit, reused from hash
    /// to hash: allocating and faulting it in fresh for every login cost more than the hashing
    /// itself at the ceiling, and returned it to the OS each time.
    memory: Arc<MemoryPool>,
}

/// Reusable Argon2 memory: at most one buffer per hashing permit is ever allocated.
#[derive(Default)]
struct MemoryPool(Mutex<Vec<Vec<Block>>>);

impl MemoryPool {
    fn take(&self) -> Vec<Block> {
        self.0.lock().map(|mut free| free.pop()).ok().flatten().unwrap_or_default()
    }

    fn give_back(&self, buffer: Vec<Block>) {
        if let Ok(mut free) = self.0.lock() {
            free.push(buffer);
        }
    }
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
            memory: Arc::default(),
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
        let pool = self.memory.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let mut memory = pool.take();
            let ok = verify_with_memory(password.as_bytes(), &hash, &mut memory);
            pool.give_back(memory);
            ok
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

/// Whether `password` hashes to the PHC string `stored`, computed in `memory` (grown to the
/// stored cost's size if needed, then kept). A malformed stored hash never matches.
fn verify_with_memory(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else { return false };
    let Ok(version) = hash.version.map_or(Ok(Version::V0x13), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(&hash) else { return false };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let blocks = params.block_count();
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, &mut memory[..blocks])
        .is_ok()
        && constant_time_eq(&out, expected.as_bytes())
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
                    let mut memory = Vec::new();
                    while std::time::Instant::now() < deadline {
                        let _ = verify_with_memory(b"benchmark-password-123", &hash, &mut memory);
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

    #[test]
    fn reused_memory_verifies_hashes_of_any_cost_and_refuses_malformed_ones() {
        let mut memory = Vec::new();
        let small = hash_blocking(&Params::new(64, 1, 1, None).unwrap(), "pw-one").unwrap();
        let large = hash_blocking(&Params::new(256, 2, 1, None).unwrap(), "pw-two").unwrap();
        assert!(verify_with_memory(b"pw-two", &large, &mut memory));
        assert_eq!(memory.len(), 256, "grown to the larger cost");
        assert!(verify_with_memory(b"pw-one", &small, &mut memory), "a smaller cost reuses a prefix");
        assert_eq!(memory.len(), 256, "kept, not reallocated");
        assert!(!verify_with_memory(b"pw-one", &large, &mut memory));
        assert!(!verify_with_memory(b"pw-one", "$argon2id$v=19$not-a-hash", &mut memory));
        assert!(!verify_with_memory(b"pw-one", "", &mut memory));
    }
}
