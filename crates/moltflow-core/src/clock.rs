//! Time as the service stores it: milliseconds since the Unix epoch, rendered as RFC 3339 UTC.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, now, on the system clock. Private: every decision of the
/// service reads its [`Clock`] (which tests move); the few that must follow another party's real
/// time call [`real_time_ms`] and say why.
fn now_ms() -> i64 {
    // SystemTime directly: this runs several times per authenticated request.
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Real time, for what another party's clock decides (a Stripe signature's 5-minute tolerance,
/// a timestamp that only records when something was made): not moved by [`Clock::advance`].
pub fn real_time_ms() -> i64 {
    now_ms()
}

/// `2026-01-15T10:00:00Z` (or with milliseconds when they are not zero).
pub fn rfc3339(ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let at = if ms % 1000 == 0 { at.replace_millisecond(0).unwrap_or(at) } else { at };
    at.format(&Rfc3339).unwrap_or_default()
}

/// The service's time, which every use case, throttle, writer and worker reads: the system clock,
/// which tests move forward with [`Clock::advance`] instead of sleeping.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl Clock {
    /// Milliseconds since the Unix epoch, as this clock reads them.
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves this clock forward (tests).
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms.fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::Relaxed);
    }
}

pub const SECOND_MS: i64 = 1000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_whole_seconds_without_fraction() {
        assert_eq!(rfc3339(1_768_471_200_000), "2026-01-15T10:00:00Z");
        assert_eq!(rfc3339(1_768_471_200_123), "2026-01-15T10:00:00.123Z");
    }

    #[test]
    fn an_advanced_clock_reads_later() {
        let clock = Clock::default();
        let before = clock.now_ms();
        clock.advance(std::time::Duration::from_secs(900));
        assert!(clock.now_ms() - before >= 900_000);
    }
}
