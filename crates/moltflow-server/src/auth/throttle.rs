//! Login throttling: per-IP request rates (governor) and the per-email lockout after repeated
//! failures (5 within 15 minutes, API.md §3). Both scale with `MOLTFLOW_RATE_LIMIT_SCALE`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moltflow_core::clock::{MINUTE_MS, now_ms};

pub const LOCKOUT_FAILURES: f64 = 5.0;
pub const LOCKOUT_WINDOW_MS: i64 = 15 * MINUTE_MS;

/// Requests a minute per client IP, keyed by what they are for.
pub struct IpLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl IpLimiter {
    /// `per_minute` scaled by `scale`; a scale of 0 turns the limit off.
    pub fn per_minute(per_minute: u32, scale: f64) -> IpLimiter {
        let scaled = (per_minute as f64 * scale).round();
        let limiter = (scale > 0.0).then(|| {
            let n = NonZeroU32::new(scaled.clamp(1.0, u32::MAX as f64) as u32).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(n))
        });
        IpLimiter { limiter }
    }

    /// `Err(seconds to wait)` when `ip` is over its limit.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let (Some(limiter), Some(ip)) = (&self.limiter, ip) else {
            return Ok(());
        };
        limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1))
    }

    /// Drops the state of IPs that are back to a full allowance.
    pub fn sweep(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Failed logins per email within the window.
pub struct LoginLockout {
    threshold: usize,
    failures: moka::sync::Cache<String, Arc<Mutex<Vec<i64>>>>,
}

impl LoginLockout {
    pub fn new(scale: f64) -> LoginLockout {
        let threshold = if scale > 0.0 { (LOCKOUT_FAILURES * scale).round().max(1.0) as usize } else { 0 };
        LoginLockout {
            threshold,
            failures: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_millis(LOCKOUT_WINDOW_MS as u64))
                .build(),
        }
    }

    /// `Err(seconds until the oldest counted failure leaves the window)` while locked.
    pub fn check(&self, email: &str) -> Result<(), u64> {
        if self.threshold == 0 {
            return Ok(());
        }
        let Some(entry) = self.failures.get(email) else {
            return Ok(());
        };
        let now = now_ms();
        let mut times = entry.lock().unwrap_or_else(|p| p.into_inner());
        times.retain(|t| now - t < LOCKOUT_WINDOW_MS);
        if times.len() >= self.threshold {
            let oldest = times[times.len() - self.threshold];
            return Err(((oldest + LOCKOUT_WINDOW_MS - now) / 1000).max(1) as u64);
        }
        Ok(())
    }

    pub fn record_failure(&self, email: &str) {
        if self.threshold == 0 {
            return;
        }
        let entry = self.failures.get_with_by_ref(email, || Arc::new(Mutex::new(Vec::new())));
        let mut times = entry.lock().unwrap_or_else(|p| p.into_inner());
        times.push(now_ms());
        let keep = self.threshold * 2;
        if times.len() > keep {
            let drop = times.len() - keep;
            times.drain(..drop);
        }
    }

    pub fn clear(&self, email: &str) {
        self.failures.invalidate(email);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_threshold_and_clears_on_success() {
        let l = LoginLockout::new(1.0);
        for _ in 0..5 {
            assert!(l.check("a@b.co").is_ok());
            l.record_failure("a@b.co");
        }
        let wait = l.check("a@b.co").unwrap_err();
        assert!(wait > 800 && wait <= 900, "{wait}");
        assert!(l.check("c@d.co").is_ok());
        l.clear("a@b.co");
        assert!(l.check("a@b.co").is_ok());
    }

    #[test]
    fn scale_zero_disables() {
        let l = LoginLockout::new(0.0);
        for _ in 0..50 {
            l.record_failure("a@b.co");
        }
        assert!(l.check("a@b.co").is_ok());
        let ip = IpLimiter::per_minute(1, 0.0);
        for _ in 0..5 {
            assert!(ip.check(Some([127, 0, 0, 1].into())).is_ok());
        }
    }

    #[test]
    fn ip_limit_answers_wait_time() {
        let ip = IpLimiter::per_minute(2, 1.0);
        let addr = Some([10, 0, 0, 1].into());
        assert!(ip.check(addr).is_ok());
        assert!(ip.check(addr).is_ok());
        assert!(ip.check(addr).unwrap_err() >= 1);
        assert!(ip.check(Some([10, 0, 0, 2].into())).is_ok());
    }
}
