//! The sign-in lockout of one account, as a pure state machine: no IO, every time is passed in.
//!
//! The rule (API.md §3): at most `max_checks` passwords of one account are checked within
//! `window_ms`, however the attempts are spread in time or run at once. An attempt therefore
//! *reserves* its check before the password is looked at; the reservation itself is the count, so
//! a burst of concurrent attempts cannot all pass a "not locked yet" test before any of them is
//! counted. A right password clears the count; a wrong one leaves its reservation standing; an
//! attempt that ended before its password was checked (a database error) gives its slot back.
//!
//! The state is the list of reservation times inside the window (at most `max_checks` of them),
//! small enough to live in memory per node or, shared by nodes, in a Redis sorted set updated by
//! one script with the same steps.

use crate::clock::MINUTE_MS;

/// How many password checks an account gets per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_checks: usize,
    pub window_ms: i64,
}

impl LockoutPolicy {
    /// 5 checks in 15 minutes.
    pub const DEFAULT: LockoutPolicy = LockoutPolicy { max_checks: 5, window_ms: 15 * MINUTE_MS };

    /// The default with its count multiplied by `scale` (at least 1); `None` (no lockout) at 0.
    pub fn scaled(scale: f64) -> Option<LockoutPolicy> {
        (scale > 0.0).then(|| LockoutPolicy {
            max_checks: ((Self::DEFAULT.max_checks as f64) * scale).round().clamp(1.0, 1e9) as usize,
            ..Self::DEFAULT
        })
    }
}

/// A password check that has been counted and may now run.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation is either kept (the check ran) or released (it did not)"]
pub struct Reservation {
    at: i64,
}

/// Refused: the account has used its checks; the oldest leaves the window in `retry_after_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locked {
    pub retry_after_ms: i64,
}

impl Locked {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        ((self.retry_after_ms + 999) / 1000).max(1) as u64
    }
}

/// The counted checks of one account, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockoutState {
    checks: Vec<i64>,
}

impl LockoutState {
    /// Forgets checks that have left the window (or lie in the future of a clock set back).
    pub fn apply_time_step(&mut self, now: i64, policy: &LockoutPolicy) {
        self.checks.retain(|&at| at <= now && now - at < policy.window_ms);
    }

    /// Counts a check at `now`, or refuses it when the window is full.
    pub fn reserve(&mut self, now: i64, policy: &LockoutPolicy) -> Result<Reservation, Locked> {
        self.apply_time_step(now, policy);
        if self.checks.len() >= policy.max_checks {
            let oldest = self.checks[self.checks.len() - policy.max_checks];
            return Err(Locked { retry_after_ms: (oldest + policy.window_ms - now).max(1) });
        }
        self.checks.push(now);
        Ok(Reservation { at: now })
    }

    /// Gives back a reservation whose password was never checked.
    pub fn release(&mut self, reservation: Reservation) {
        if let Some(i) = self.checks.iter().rposition(|&at| at == reservation.at) {
            self.checks.remove(i);
        }
    }

    /// A right password: the count starts again.
    pub fn succeed(&mut self) {
        self.checks.clear();
    }

    /// Nothing counted: the state may be dropped.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: LockoutPolicy = LockoutPolicy::DEFAULT;
    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn the_sixth_reservation_in_the_window_is_refused_until_the_oldest_leaves() {
        let mut s = LockoutState::default();
        for i in 0..5 {
            let _ = s.reserve(T0 + i * 1000, &P).expect("within the allowance");
        }
        let locked = s.reserve(T0 + 10_000, &P).unwrap_err();
        assert_eq!(locked.retry_after_ms, 15 * MINUTE_MS - 10_000);
        assert_eq!(locked.retry_after_secs(), 890);
        // Refusals are not counted: the lock ends when the first reservation leaves the window.
        assert!(s.reserve(T0 + 15 * MINUTE_MS - 1, &P).is_err());
        let _ = s.reserve(T0 + 15 * MINUTE_MS, &P).expect("the oldest has left");
        assert!(s.reserve(T0 + 15 * MINUTE_MS, &P).is_err(), "the other four still count");
    }

    #[test]
    fn reservations_count_before_any_outcome_is_known() {
        // Twelve attempts at the same instant, none finished: only five may check a password.
        let mut s = LockoutState::default();
        let granted = (0..12).filter_map(|_| s.reserve(T0, &P).ok()).count();
        assert_eq!(granted, 5);
    }

    #[test]
    fn a_success_clears_and_a_release_gives_the_slot_back() {
        let mut s = LockoutState::default();
        for _ in 0..4 {
            let _ = s.reserve(T0, &P).unwrap();
        }
        let last = s.reserve(T0 + 1, &P).unwrap();
        assert!(s.reserve(T0 + 2, &P).is_err());
        s.release(last);
        let _ = s.reserve(T0 + 3, &P).expect("released slot");
        s.succeed();
        assert!(s.is_empty());
        for _ in 0..5 {
            let _ = s.reserve(T0 + 4, &P).unwrap();
        }
    }

    #[test]
    fn a_clock_set_back_does_not_lock_forever() {
        let mut s = LockoutState::default();
        for _ in 0..5 {
            let _ = s.reserve(T0, &P).unwrap();
        }
        let _ = s.reserve(T0 - 60_000, &P).expect("reservations in the future are forgotten");
    }

    #[test]
    fn a_fresh_account_holds_nothing_and_may_check() {
        let mut s = LockoutState::default();
        assert!(s.is_empty());
        let r = s.reserve(T0, &P).expect("a fresh account is open");
        assert!(!s.is_empty());
        s.release(r);
        assert!(s.is_empty(), "a check that never ran leaves nothing behind");
    }

    #[test]
    fn failures_under_the_threshold_leave_the_account_open() {
        let mut s = LockoutState::default();
        for i in 0..4 {
            // A wrong password: the reservation is kept.
            let _ = s.reserve(T0 + i * MINUTE_MS, &P).expect("under the threshold");
        }
        let _ = s.reserve(T0 + 4 * MINUTE_MS, &P).expect("the fifth check is still allowed");
        let locked = s.reserve(T0 + 4 * MINUTE_MS, &P).unwrap_err();
        assert_eq!(locked.retry_after_ms, 11 * MINUTE_MS, "until the first failure is 15 minutes old");
    }

    #[test]
    fn a_lock_is_refused_alike_and_counts_down_without_being_extended() {
        let mut s = LockoutState::default();
        for _ in 0..5 {
            let _ = s.reserve(T0, &P).unwrap();
        }
        let waits: Vec<i64> = (1..=3).map(|m| s.reserve(T0 + m * MINUTE_MS, &P).unwrap_err().retry_after_ms).collect();
        assert_eq!(waits, [14 * MINUTE_MS, 13 * MINUTE_MS, 12 * MINUTE_MS]);
        assert_eq!(s, LockoutState { checks: vec![T0; 5] }, "refusals are not counted");
        let almost = s.reserve(T0 + 15 * MINUTE_MS - 1, &P).unwrap_err();
        assert_eq!((almost.retry_after_ms, almost.retry_after_secs()), (1, 1));
    }

    #[test]
    fn checks_expire_one_by_one_and_an_idle_account_empties() {
        let mut s = LockoutState::default();
        for i in 0..5 {
            let _ = s.reserve(T0 + i * MINUTE_MS, &P).unwrap();
        }
        // Each minute from the 15th on, the oldest check leaves the window and one slot opens.
        for i in 0..5 {
            let now = T0 + (15 + i) * MINUTE_MS;
            let _ = s.reserve(now, &P).expect("a slot opened");
            assert!(s.reserve(now, &P).is_err());
        }
        s.apply_time_step(T0 + 34 * MINUTE_MS, &P);
        assert!(s.is_empty(), "15 minutes after the last check nothing is left");
    }

    #[test]
    fn a_success_resets_a_partly_used_window() {
        let mut s = LockoutState::default();
        for _ in 0..3 {
            let _ = s.reserve(T0, &P).unwrap();
        }
        let _ = s.reserve(T0 + 1, &P).unwrap();
        s.succeed();
        for _ in 0..5 {
            let _ = s.reserve(T0 + 2, &P).expect("a right password gives the full allowance back");
        }
        assert!(s.reserve(T0 + 2, &P).is_err());
    }

    #[test]
    fn a_clock_set_back_within_a_lock_forgets_the_future_and_never_waits_negatively() {
        let mut s = LockoutState::default();
        for i in 0..5 {
            let _ = s.reserve(T0 + i * 1000, &P).unwrap();
        }
        // Back by 2.5 s: the checks "after" now are dropped, the older ones still count.
        let now = T0 + 1500;
        let _ = s.reserve(now, &P).expect("three of five checks lie in the future");
        let _ = s.reserve(now, &P).unwrap();
        let _ = s.reserve(now, &P).unwrap();
        let locked = s.reserve(now, &P).unwrap_err();
        assert_eq!(locked.retry_after_ms, 15 * MINUTE_MS - 1500);
    }

    #[test]
    fn scaling_multiplies_the_count_and_zero_turns_it_off() {
        assert_eq!(LockoutPolicy::scaled(1.0), Some(P));
        assert_eq!(LockoutPolicy::scaled(2.0).map(|p| p.max_checks), Some(10));
        assert_eq!(LockoutPolicy::scaled(0.01).map(|p| p.max_checks), Some(1));
        assert_eq!(LockoutPolicy::scaled(0.0), None);
    }
}
