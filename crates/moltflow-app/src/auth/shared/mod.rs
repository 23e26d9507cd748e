//! Limits shared by every node through Redis (`MOLTFLOW_REDIS_URL`, API.md §9): the connection,
//! its health, and the two scripts every shared limiter runs (GCRA for request rates, a sliding
//! log for the lockout and the failed-authentication throttle), each one atomic for its key.
//!
//! Every call is bounded by a short timeout. A call that fails or times out marks Redis down:
//! from then on the limiters count in this node's memory (their per-node twins) without waiting
//! on Redis at all, until the probe (a `PING` every `redis_probe_interval`) gets an answer again.
//! Each change of state is logged once and shown in `/metrics` (`moltflow_redis_up`;
//! `moltflow_redis_fallbacks_total` counts the decisions taken per node meanwhile).

pub mod logs;
pub mod rates;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script};

/// The connection to the shared Redis and whether it answers.
pub struct SharedStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    up: AtomicBool,
    gcra: Script,
    log: Script,
}

/// The outcome of one GCRA step (`gcra.lua`).
#[derive(Debug, PartialEq, Eq)]
pub enum Gcra {
    /// Counted; `remaining` requests may follow at once.
    Allowed { remaining: u32 },
    /// Refused; the next request conforms in `wait_us` microseconds.
    Refused { wait_us: u64 },
}

/// The outcome of a `reserve` on a sliding log (`sliding_log.lua`).
#[derive(Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// Counted under this member (to remove it again if it is given back).
    Added,
    /// The window is full; the oldest entry that counts leaves it in `retry_after_ms`.
    Full { retry_after_ms: i64 },
}

impl SharedStore {
    /// A store over `url`, connected lazily (a Redis down at start-up must not stop the service)
    /// and marked down until the first probe answers.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<SharedStore> {
        let client = redis::Client::open(url)?;
        // Reconnecting is retried by the next call or probe, not by a long backoff in between:
        // the probe must see Redis again within its interval once it answers.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        metrics::gauge!("moltflow_redis_up").set(0.0);
        metrics::counter!("moltflow_redis_fallbacks_total").increment(0);
        Ok(SharedStore {
            conn,
            prefix: prefix.to_owned(),
            timeout,
            up: AtomicBool::new(false),
            gcra: Script::new(include_str!("gcra.lua")),
            log: Script::new(include_str!("sliding_log.lua")),
        })
    }

    /// Whether limits are shared right now (false: every node counts for itself).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// `<prefix><kind>:<id>`; callers hash whatever could identify a person (emails, addresses).
    pub fn key(&self, kind: &str, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + id.len() + 1);
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push(':');
        key.push_str(id);
        key
    }

    /// One GCRA step of `key`: `limit` requests per `period_ms`, at `now_ms`. `None`: Redis is
    /// down or slow, the caller counts on this node.
    pub async fn gcra(&self, key: &str, limit: u32, period_ms: i64, now_ms: i64) -> Option<Gcra> {
        let interval_us = period_ms as f64 * 1000.0 / f64::from(limit.max(1));
        let mut call = self.gcra.key(key);
        call.arg(interval_us).arg(limit).arg(now_ms);
        let (allowed, value): (i64, i64) = self.run(call.invoke_async(&mut self.conn.clone())).await?;
        Some(if allowed == 1 {
            Gcra::Allowed { remaining: value.clamp(0, i64::from(u32::MAX)) as u32 }
        } else {
            Gcra::Refused { wait_us: value.max(0) as u64 }
        })
    }

    /// Adds `member` at `now_ms` to the log of `key` unless `max` entries already lie in the last
    /// `window_ms`.
    pub async fn reserve(&self, key: &str, member: &str, max: u64, window_ms: i64, now_ms: i64) -> Option<LogEntry> {
        let mut call = self.log.key(key);
        call.arg("reserve").arg(member).arg(max).arg(window_ms).arg(now_ms);
        let (added, value): (i64, i64) = self.run(call.invoke_async(&mut self.conn.clone())).await?;
        Some(if added == 1 { LogEntry::Added } else { LogEntry::Full { retry_after_ms: value } })
    }

    /// Adds `member` at `now_ms` whatever the count, keeping only the newest `max` entries.
    pub async fn record(&self, key: &str, member: &str, max: u64, window_ms: i64, now_ms: i64) -> Option<()> {
        let mut call = self.log.key(key);
        call.arg("record").arg(member).arg(max).arg(window_ms).arg(now_ms);
        let _: (i64, i64) = self.run(call.invoke_async(&mut self.conn.clone())).await?;
        Some(())
    }

    /// Removes one entry of a log (a reservation given back).
    pub async fn remove(&self, key: &str, member: &str) -> Option<()> {
        let cmd = redis::cmd("ZREM").arg(key).arg(member).to_owned();
        let _: i64 = self.run(cmd.query_async(&mut self.conn.clone())).await?;
        Some(())
    }

    /// Forgets a whole log (a right password).
    pub async fn clear(&self, key: &str) -> Option<()> {
        let cmd = redis::cmd("DEL").arg(key).to_owned();
        let _: i64 = self.run(cmd.query_async(&mut self.conn.clone())).await?;
        Some(())
    }

    /// Runs one call when Redis is up, within the timeout; `None` (and Redis marked down on a
    /// failure) when the caller must decide on this node.
    async fn run<T: FromRedisValue>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        if !self.is_up() {
            metrics::counter!("moltflow_redis_fallbacks_total").increment(1);
            return None;
        }
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.mark_down(&outcome);
        metrics::counter!("moltflow_redis_fallbacks_total").increment(1);
        None
    }

    /// `PING` within the timeout; marks Redis up or down by the answer.
    pub async fn probe(&self) -> bool {
        let ping = redis::cmd("PING").to_owned();
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => {
                if !self.is_up() {
                    // A Redis that restarted has forgotten the scripts: load them before the
                    // first request needs them, rather than in its time budget.
                    let _ = tokio::time::timeout(self.timeout * 4, async {
                        let _ = self.gcra.load_async(&mut conn).await;
                        let _ = self.log.load_async(&mut conn).await;
                    })
                    .await;
                }
                self.mark_up();
                true
            }
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                false
            }
            Err(_) => {
                self.mark_down(&format!("no answer within {} ms", self.timeout.as_millis()));
                false
            }
        }
    }

    fn mark_down(&self, why: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            metrics::gauge!("moltflow_redis_up").set(0.0);
            tracing::warn!(
                error = %why,
                "Redis is unreachable: rate limits, throttles and lockouts now count per node until it answers again"
            );
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            metrics::gauge!("moltflow_redis_up").set(1.0);
            tracing::info!("Redis answers: rate limits, throttles and lockouts are shared by every node");
        }
    }
}

/// Probes Redis every `interval` until `stop` changes: brings the shared limits back once Redis
/// answers again, and notices an outage even while no request comes.
pub async fn probe_loop(
    store: std::sync::Arc<SharedStore>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => { store.probe().await; }
            _ = stop.changed() => return,
        }
    }
}

/// A short, stable name for something that must not appear in a key as it is (an email, a client
/// network): 128 bits of its SHA-256.
pub fn hashed(value: &str) -> String {
    let mut hex = moltflow_core::secret::sha256_hex(value);
    hex.truncate(32);
    hex
}

/// A member name that no other reservation shares, on any node.
pub fn unique_member() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
