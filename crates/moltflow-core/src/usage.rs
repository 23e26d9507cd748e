//! Usage metrics (API.md §7): monthly counters and current-count gauges, and which plan limit
//! caps each.

use crate::plan::Limits;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Messages,
    AiReplies,
    Sessions,
    Groups,
    Labels,
}

/// The largest quantity one event or one consume may carry: far above any real batch, far below
/// where sums of a month could overflow 63 bits.
pub const MAX_QUANTITY: u64 = 1_000_000;

impl Metric {
    pub const ALL: [Metric; 5] =
        [Metric::Messages, Metric::AiReplies, Metric::Sessions, Metric::Groups, Metric::Labels];
    pub const COUNTERS: [Metric; 2] = [Metric::Messages, Metric::AiReplies];
    pub const GAUGES: [Metric; 3] = [Metric::Sessions, Metric::Groups, Metric::Labels];

    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Messages => "messages",
            Metric::AiReplies => "ai_replies",
            Metric::Sessions => "sessions",
            Metric::Groups => "groups",
            Metric::Labels => "labels",
        }
    }

    /// Counters accumulate per calendar month; gauges are current counts that are set, not added.
    pub fn is_counter(self) -> bool {
        matches!(self, Metric::Messages | Metric::AiReplies)
    }

    /// The plan limit for this metric; `None` is unlimited.
    pub fn limit(self, limits: &Limits) -> Option<u64> {
        match self {
            Metric::Messages => limits.max_messages_per_month,
            Metric::AiReplies => limits.ai_replies_per_month,
            Metric::Sessions => limits.max_sessions,
            Metric::Groups => limits.max_groups,
            Metric::Labels => limits.max_labels,
        }
    }
}

/// How much of a limit is used: `remaining` never goes below zero (events may report usage past
/// the limit), `percent` is `used / limit` rounded to two decimals, and a zero limit (the metric
/// is not in the plan) has no percentage: "100 %" would read as "used up".
pub fn remaining_and_percent(used: u64, limit: Option<u64>) -> (Option<u64>, Option<f64>) {
    match limit {
        None => (None, None),
        Some(0) => (Some(0), None),
        Some(l) => (Some(l.saturating_sub(used)), Some(((used as f64) * 10_000.0 / l as f64).round() / 100.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_fail() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.as_str()), Some(m));
        }
        assert_eq!(Metric::parse("Messages"), None);
        assert_eq!(Metric::parse("emails"), None);
        assert!(Metric::COUNTERS.iter().all(|m| m.is_counter()));
        assert!(Metric::GAUGES.iter().all(|m| !m.is_counter()));
    }

    #[test]
    fn remaining_and_percent_of_limits() {
        assert_eq!(remaining_and_percent(10, None), (None, None));
        assert_eq!(remaining_and_percent(0, Some(0)), (Some(0), None));
        assert_eq!(remaining_and_percent(1, Some(3)), (Some(2), Some(33.33)));
        assert_eq!(remaining_and_percent(60, Some(50)), (Some(0), Some(120.0)));
        assert_eq!(remaining_and_percent(50, Some(50)), (Some(0), Some(100.0)));
    }
}
