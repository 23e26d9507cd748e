//! "At this pace you reach the limit on <date>": the overview's answer to "can I run this campaign
//! this month?". The pace is the month's average so far (today counted as a whole day, so that an
//! early-morning page does not promise a date that the afternoon's sending will pull closer).

use moltflow_core::period::Day;

/// What the month's pace says about a monthly limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forecast {
    /// The plan has no limit for this metric.
    Unlimited,
    /// The plan includes none of it (a limit of 0).
    NotIncluded,
    /// Nothing used yet this month: there is no pace to extrapolate.
    NoUse { limit: u64 },
    /// The limit is used up; more is refused until the month ends.
    Reached { used: u64, limit: u64, resets_on: Day },
    /// At this pace the limit is reached on `on`, before the month ends.
    ReachedOn { on: Day, used: u64, limit: u64 },
    /// At this pace the month ends at `projected`, under the limit.
    Within { projected: u64, limit: u64 },
}

/// `daily`: the month's count per day, day 1 first, up to and including `today` (days after
/// today, if given, are ignored; missing days count as zero).
pub fn forecast(daily: &[u64], limit: Option<u64>, today: Day) -> Forecast {
    let Some(limit) = limit else { return Forecast::Unlimited };
    if limit == 0 {
        return Forecast::NotIncluded;
    }
    let elapsed = u64::from(today.day());
    let used: u64 = daily.iter().take(elapsed as usize).fold(0u64, |a, n| a.saturating_add(*n));
    let month = today.month();
    if used >= limit {
        return Forecast::Reached { used, limit, resets_on: month.next().day(1) };
    }
    if used == 0 {
        return Forecast::NoUse { limit };
    }
    // Days after today until the pace (used / elapsed a day) covers what is left, rounded up;
    // in u128 so that no plan size overflows.
    let left = u128::from(limit - used);
    let (used128, elapsed128) = (u128::from(used), u128::from(elapsed));
    let days_needed = (left * elapsed128).div_ceil(used128);
    let last = u128::from(month.days());
    let on_day = u128::from(today.day()) + days_needed;
    if on_day <= last {
        // `on_day` ≤ 31 here, so the narrowing cannot truncate.
        return Forecast::ReachedOn { on: month.day(on_day as u8), used, limit };
    }
    let projected = (used128 * last / elapsed128).min(u128::from(u64::MAX)) as u64;
    Forecast::Within { projected, limit }
}

impl Forecast {
    /// Whether the overview should offer the upgrade button next to this line.
    pub fn suggests_upgrade(&self) -> bool {
        matches!(self, Forecast::Reached { .. } | Forecast::ReachedOn { .. } | Forecast::NotIncluded)
    }

    /// The sentence shown, for `what` ("messages").
    pub fn sentence(&self, what: &str) -> String {
        match self {
            Forecast::Unlimited => format!("Your plan has no limit on {what}."),
            Forecast::NotIncluded => format!("Your plan includes no {what}; upgrade to use them."),
            Forecast::NoUse { limit } => {
                format!("No {what} yet this month; your plan allows {} a month.", thousands(*limit))
            }
            Forecast::Reached { used, limit, resets_on } => format!(
                "You have used {} of {} {what}: the limit is reached until {resets_on}.",
                thousands(*used),
                thousands(*limit)
            ),
            Forecast::ReachedOn { on, .. } => format!("At this pace you reach the {what} limit on {on}."),
            Forecast::Within { projected, limit } => format!(
                "At this pace you end the month at about {} of {} {what}.",
                thousands(*projected),
                thousands(*limit)
            ),
        }
    }
}

/// `12345` → `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use moltflow_core::period::Month;

    use super::*;

    fn day(y: i32, m: u8, d: u8) -> Day {
        Month::new(y, m).unwrap().day(d)
    }

    #[test]
    fn a_steady_pace_reaches_the_limit_on_the_day_it_covers_what_is_left() {
        // 10 a day for 5 days = 50 of 100: 50 more at 10 a day is 5 days after the 5th.
        let f = forecast(&[10; 5], Some(100), day(2026, 11, 5));
        assert_eq!(f, Forecast::ReachedOn { on: day(2026, 11, 10), used: 50, limit: 100 });
        assert_eq!(f.sentence("messages"), "At this pace you reach the messages limit on 2026-11-10.");
        assert!(f.suggests_upgrade());
    }

    #[test]
    fn a_part_day_of_pace_rounds_the_date_later_not_earlier() {
        // 7 in 3 days, 3 left: 3 / (7/3) = 1.29 days → the day after tomorrow.
        assert_eq!(
            forecast(&[3, 0, 4], Some(10), day(2026, 11, 3)),
            Forecast::ReachedOn { on: day(2026, 11, 5), used: 7, limit: 10 }
        );
    }

    #[test]
    fn a_pace_that_lasts_the_month_projects_the_month_end_total() {
        // 1 a day in a 30-day month ends at 30 of 50.
        let f = forecast(&[1; 10], Some(50), day(2026, 11, 10));
        assert_eq!(f, Forecast::Within { projected: 30, limit: 50 });
        assert_eq!(f.sentence("messages"), "At this pace you end the month at about 30 of 50 messages.");
        assert!(!f.suggests_upgrade());
    }

    #[test]
    fn reaching_it_on_the_last_day_is_still_this_month() {
        // 31-day month, 10 used in 10 days, limit 31: exactly on the 31st.
        assert_eq!(
            forecast(&[1; 10], Some(31), day(2026, 12, 10)),
            Forecast::ReachedOn { on: day(2026, 12, 31), used: 10, limit: 31 }
        );
        assert!(matches!(forecast(&[1; 10], Some(32), day(2026, 12, 10)), Forecast::Within { projected: 31, .. }));
    }

    #[test]
    fn zero_use_unlimited_and_not_included_say_so_without_a_date() {
        let today = day(2026, 11, 12);
        assert_eq!(forecast(&[0; 12], Some(50), today), Forecast::NoUse { limit: 50 });
        assert_eq!(forecast(&[], Some(50), today), Forecast::NoUse { limit: 50 });
        assert_eq!(forecast(&[5; 12], None, today), Forecast::Unlimited);
        assert_eq!(forecast(&[5; 12], Some(0), today), Forecast::NotIncluded);
        assert_eq!(
            forecast(&[0; 12], Some(5000), today).sentence("messages"),
            "No messages yet this month; your plan allows 5,000 a month."
        );
        assert_eq!(forecast(&[], None, today).sentence("AI replies"), "Your plan has no limit on AI replies.");
    }

    #[test]
    fn at_or_over_the_limit_says_when_it_resets_across_the_year_end() {
        let f = forecast(&[30, 30], Some(50), day(2026, 12, 2));
        assert_eq!(f, Forecast::Reached { used: 60, limit: 50, resets_on: day(2027, 1, 1) });
        assert_eq!(f.sentence("messages"), "You have used 60 of 50 messages: the limit is reached until 2027-01-01.");
        assert!(matches!(forecast(&[50], Some(50), day(2026, 11, 1)), Forecast::Reached { .. }));
    }

    #[test]
    fn the_first_and_the_last_day_of_the_month() {
        // Day 1: 5 used, 45 left → 9 more days.
        assert_eq!(
            forecast(&[5], Some(50), day(2027, 2, 1)),
            Forecast::ReachedOn { on: day(2027, 2, 10), used: 5, limit: 50 }
        );
        // Last day of February, under the limit: the projection is what was used.
        assert_eq!(forecast(&[1; 28], Some(50), day(2027, 2, 28)), Forecast::Within { projected: 28, limit: 50 });
    }

    #[test]
    fn days_after_today_are_ignored_and_huge_numbers_do_not_overflow() {
        assert_eq!(
            forecast(&[1, 1, 1000], Some(100), day(2026, 11, 2)),
            forecast(&[1, 1], Some(100), day(2026, 11, 2))
        );
        let f = forecast(&[u64::MAX / 4, 1], Some(u64::MAX), day(2026, 11, 2));
        assert!(matches!(f, Forecast::ReachedOn { .. } | Forecast::Within { .. }), "{f:?}");
        assert!(matches!(forecast(&[u64::MAX, u64::MAX], Some(u64::MAX), day(2026, 11, 2)), Forecast::Reached { .. }));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
