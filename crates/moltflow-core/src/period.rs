//! Calendar periods in UTC: the month and day keys usage is bucketed by (`2026-02`, `2026-02-28`).
//!
//! Keys are computed here, never by the database, so that SQLite and PostgreSQL agree.

use std::fmt;

use time::{Date, Month as TimeMonth, OffsetDateTime, Time};

/// A calendar month in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u8,
}

impl Month {
    /// `month` is 1..=12 and `year` 1..=9999 (keys must stay four digits to sort as text).
    pub fn new(year: i32, month: u8) -> Option<Month> {
        ((1..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Month { year, month })
    }

    /// The month containing `ms` (epoch milliseconds).
    pub fn of_ms(ms: i64) -> Month {
        let at = at_ms(ms);
        Month { year: at.year(), month: at.month() as u8 }
    }

    /// `YYYY-MM`, strictly: four digits, a dash, two digits, month 01..=12.
    pub fn parse(key: &str) -> Option<Month> {
        let b = key.as_bytes();
        if b.len() != 7 || b[4] != b'-' || !b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit()) {
            return None;
        }
        Month::new(key[..4].parse().ok()?, key[5..].parse().ok()?)
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn next(self) -> Month {
        if self.month == 12 { Month { year: self.year + 1, month: 1 } } else { Month { month: self.month + 1, ..self } }
    }

    pub fn prev(self) -> Month {
        if self.month == 1 { Month { year: self.year - 1, month: 12 } } else { Month { month: self.month - 1, ..self } }
    }

    pub fn days(self) -> u8 {
        time::util::days_in_month(self.time_month(), self.year)
    }

    /// Midnight UTC of the first day, in epoch milliseconds.
    pub fn start_ms(self) -> i64 {
        self.day(1).start_ms()
    }

    /// Midnight UTC of the first day of the next month: when this month's counters reset.
    pub fn end_ms(self) -> i64 {
        self.next().start_ms()
    }

    /// Day `d` (1-based) of this month; `d` must be within [`Month::days`].
    pub fn day(self, d: u8) -> Day {
        Day { month: self, day: d.clamp(1, self.days()) }
    }

    fn time_month(self) -> TimeMonth {
        TimeMonth::try_from(self.month).unwrap_or(TimeMonth::January)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A calendar day in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    month: Month,
    day: u8,
}

impl Day {
    pub fn of_ms(ms: i64) -> Day {
        let at = at_ms(ms);
        Day { month: Month { year: at.year(), month: at.month() as u8 }, day: at.day() }
    }

    pub fn month(self) -> Month {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }

    pub fn start_ms(self) -> i64 {
        Date::from_calendar_date(self.month.year, self.month.time_month(), self.day)
            .map(|d| d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp() * 1000)
            .unwrap_or(0)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:02}", self.month, self.day)
    }
}

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_instants() {
        // 2024-02-29T23:59:59.999Z, a leap day, and the next millisecond.
        let leap_end = 1_709_251_199_999;
        assert_eq!(Day::of_ms(leap_end).to_string(), "2024-02-29");
        assert_eq!(Month::of_ms(leap_end).to_string(), "2024-02");
        assert_eq!(Day::of_ms(leap_end + 1).to_string(), "2024-03-01");
        assert_eq!(Month::of_ms(0).to_string(), "1970-01");
    }

    #[test]
    fn month_lengths_follow_leap_years() {
        assert_eq!(Month::new(2024, 2).unwrap().days(), 29);
        assert_eq!(Month::new(2025, 2).unwrap().days(), 28);
        assert_eq!(Month::new(2000, 2).unwrap().days(), 29);
        assert_eq!(Month::new(2100, 2).unwrap().days(), 28);
        assert_eq!(Month::new(2026, 4).unwrap().days(), 30);
        assert_eq!(Month::new(2026, 12).unwrap().days(), 31);
    }

    #[test]
    fn december_rolls_over_into_the_next_year() {
        let dec = Month::new(2026, 12).unwrap();
        assert_eq!(dec.next().to_string(), "2027-01");
        assert_eq!(dec.next().prev(), dec);
        assert_eq!(Month::new(2027, 1).unwrap().prev().to_string(), "2026-12");
        assert_eq!(dec.end_ms(), Month::new(2027, 1).unwrap().start_ms());
        assert_eq!(dec.start_ms(), 1_796_083_200_000); // 2026-12-01T00:00:00Z
    }

    #[test]
    fn parses_only_well_formed_months() {
        assert_eq!(Month::parse("2026-02"), Month::new(2026, 2));
        for bad in
            ["2026-13", "2026-00", "2026-2", "26-02", "2026/02", "2026-02-01", "", "abcd-ef", "+026-02", "2026--2"]
        {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_start_at_utc_midnight() {
        let d = Month::new(2024, 2).unwrap().day(29);
        assert_eq!(d.to_string(), "2024-02-29");
        assert_eq!(Day::of_ms(d.start_ms()), d);
        assert_eq!(Day::of_ms(d.start_ms() - 1).to_string(), "2024-02-28");
    }
}
