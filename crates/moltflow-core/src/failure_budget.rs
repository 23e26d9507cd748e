//! How many failed authentications one client network may cause per window, as a pure state
//! machine (no IO, times passed in): a log of the failures inside the sliding window, at most
//! `max_failures` long, so "past 100 failures a minute" means exactly that.
//!
//! A credential the service does not already know to be valid is *charged* before it is looked
//! up, and the charge is refunded when it turns out valid; so however many arrive at once, at most
//! `max_failures` unknown credentials a window reach the database. Failures of credentials that
//! were known valid (a key revoked since) are recorded after the fact.

use crate::clock::MINUTE_MS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    pub max_failures: u32,
    pub window_ms: i64,
}

impl FailurePolicy {
    /// 100 failures a minute.
    pub const DEFAULT: FailurePolicy = FailurePolicy { max_failures: 100, window_ms: MINUTE_MS };

    /// The default with its count multiplied by `scale` (at least 1); `None` (off) at 0.
    pub fn scaled(scale: f64) -> Option<FailurePolicy> {
        (scale > 0.0).then(|| FailurePolicy {
            max_failures: ((Self::DEFAULT.max_failures as f64) * scale).round().clamp(1.0, u32::MAX as f64) as u32,
            ..Self::DEFAULT
        })
    }
}

/// Refused: the source has used its failures; the oldest leaves the window in `retry_after_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_ms: i64,
}

impl Throttled {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        ((self.retry_after_ms + 999) / 1000).max(1) as u64
    }
}

/// A failure charged in advance, to refund if the credential turns out valid.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a charge is kept (the credential failed) or refunded (it was valid)"]
pub struct Charge {
    at: i64,
}

/// The failures of one source inside the window, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureBudget {
    failures: Vec<i64>,
}

impl FailureBudget {
    fn apply_time_step(&mut self, now: i64, policy: &FailurePolicy) {
        let keep_from = self.failures.iter().position(|&at| now - at < policy.window_ms && at <= now);
        match keep_from {
            Some(0) => {}
            Some(i) => drop(self.failures.drain(..i)),
            None => self.failures.clear(),
        }
    }

    fn wait(&self, now: i64, policy: &FailurePolicy) -> Option<Throttled> {
        let max = policy.max_failures as usize;
        (self.failures.len() >= max).then(|| {
            let oldest = self.failures[self.failures.len() - max];
            Throttled { retry_after_ms: (oldest + policy.window_ms - now).max(1) }
        })
    }

    /// Counts a failure in advance, or refuses when the window's failures are used up.
    pub fn charge(&mut self, now: i64, policy: &FailurePolicy) -> Result<Charge, Throttled> {
        self.apply_time_step(now, policy);
        if let Some(throttled) = self.wait(now, policy) {
            return Err(throttled);
        }
        self.failures.push(now);
        Ok(Charge { at: now })
    }

    /// The charged credential was valid after all.
    pub fn refund(&mut self, charge: Charge) {
        if let Some(i) = self.failures.iter().rposition(|&at| at == charge.at) {
            self.failures.remove(i);
        }
    }

    /// Counts a failure that was not charged in advance (a credential known valid that failed);
    /// the log never holds more than the window's allowance.
    pub fn record(&mut self, now: i64, policy: &FailurePolicy) {
        self.apply_time_step(now, policy);
        self.failures.push(now);
        let max = policy.max_failures as usize;
        if self.failures.len() > max {
            let excess = self.failures.len() - max;
            self.failures.drain(..excess);
        }
    }

    /// Whether the source would be refused at `now`.
    pub fn is_throttled(&self, now: i64, policy: &FailurePolicy) -> bool {
        let mut after = self.clone();
        after.apply_time_step(now, policy);
        after.wait(now, policy).is_some()
    }

    /// Nothing counted inside the window at `now`: the state may be dropped.
    pub fn is_full(&self, now: i64, policy: &FailurePolicy) -> bool {
        self.failures.iter().all(|&at| now - at >= policy.window_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: FailurePolicy = FailurePolicy::DEFAULT;
    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn a_hundred_failures_in_the_minute_then_refused_until_the_oldest_leaves() {
        let mut b = FailureBudget::default();
        for i in 0..100 {
            let _ = b.charge(T0 + i * 100, &P).expect("within the budget");
        }
        assert!(b.is_throttled(T0 + 10_000, &P));
        let refused = b.charge(T0 + 10_000, &P).unwrap_err();
        assert_eq!(refused.retry_after_ms, 50_000);
        assert_eq!(refused.retry_after_secs(), 50);
        assert!(b.charge(T0 + 59_999, &P).is_err());
        let _ = b.charge(T0 + 60_000, &P).expect("the first failure has left the window");
        assert!(b.charge(T0 + 60_000, &P).is_err());
        assert!(b.is_full(T0 + 120_000, &P));
    }

    #[test]
    fn refunds_give_the_budget_back() {
        let mut b = FailureBudget::default();
        for _ in 0..1000 {
            let c = b.charge(T0, &P).expect("valid credentials never use the budget up");
            b.refund(c);
        }
        assert!(b.is_full(T0, &P));
    }

    #[test]
    fn recorded_failures_count_but_never_beyond_one_window() {
        let mut b = FailureBudget::default();
        for i in 0..10_000 {
            b.record(T0 + i, &P);
        }
        assert_eq!(b.failures.len(), 100);
        assert!(b.is_throttled(T0 + 10_000, &P));
        assert!(!b.is_throttled(T0 + 69_901, &P), "one failure left the window");
        assert!(b.is_full(T0 + 70_000, &P));
    }

    #[test]
    fn scaling_multiplies_and_zero_turns_off() {
        assert_eq!(FailurePolicy::scaled(1.0), Some(P));
        assert_eq!(FailurePolicy::scaled(0.5).map(|p| p.max_failures), Some(50));
        assert_eq!(FailurePolicy::scaled(0.0), None);
        let big = FailurePolicy::scaled(1e9).unwrap();
        let mut b = FailureBudget::default();
        for _ in 0..1000 {
            let _ = b.charge(T0, &big).unwrap();
        }
    }
}
