//! What the usage and overview pages show of `/usage/daily` and `/usage/history`: the chart of
//! messages per day stacked by WhatsApp session, and the tables (the same numbers) that the CSV
//! downloads hold.

use moltflow_types::{UsageDaily, UsageMonth};

use super::chart::{BarChart, Series};
use super::table::{Cell, Table};

/// The label of messages reported without a `session_id`.
pub const NO_SESSION: &str = "No session";

/// The sessions that sent messages this month, in name order, then [`NO_SESSION`] if any
/// message had none: the columns of the daily table and the layers of the chart.
fn columns(daily: &UsageDaily) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for day in &daily.days {
        for name in day.by_session.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names.sort();
    if daily.days.iter().any(|d| unassigned(d) > 0) {
        names.push(NO_SESSION.to_owned());
    }
    names
}

fn unassigned(day: &moltflow_types::UsageDay) -> u64 {
    day.messages.saturating_sub(day.by_session.values().copied().fold(0, u64::saturating_add))
}

fn per_session(daily: &UsageDaily, column: &str) -> Vec<u64> {
    daily
        .days
        .iter()
        .map(|d| if column == NO_SESSION { unassigned(d) } else { d.by_session.get(column).copied().unwrap_or(0) })
        .collect()
}

/// Messages per day, one layer per session (a single layer when no session is named).
pub fn daily_chart(daily: &UsageDaily, id: &str, by_session: bool) -> BarChart {
    let labels = daily.days.iter().map(|d| d.date.clone()).collect();
    let names = columns(daily);
    let series = if by_session && names.len() > 1 {
        names.iter().map(|n| Series { name: n.clone(), values: per_session(daily, n) }).collect()
    } else {
        vec![Series { name: "Messages".to_owned(), values: daily.days.iter().map(|d| d.messages).collect() }]
    };
    BarChart {
        id: id.to_owned(),
        title: format!("Messages per day, {}", daily.month),
        unit: "messages".to_owned(),
        labels,
        series,
    }
}

/// Day × session: the date, messages per session, all messages, AI replies; a total row last.
pub fn daily_table(daily: &UsageDaily) -> Table {
    let names = columns(daily);
    let mut header = vec!["Date".to_owned()];
    header.extend(names.iter().map(|n| format!("Messages: {n}")));
    header.extend(["Messages".to_owned(), "AI replies".to_owned()]);
    let by_column: Vec<Vec<u64>> = names.iter().map(|n| per_session(daily, n)).collect();
    let mut rows: Vec<Vec<Cell>> = daily
        .days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut row = vec![Cell::text(d.date.clone())];
            row.extend(by_column.iter().map(|c| Cell::number(c[i])));
            row.extend([Cell::number(d.messages), Cell::number(d.ai_replies)]);
            row
        })
        .collect();
    let sum = |v: &mut dyn Iterator<Item = u64>| v.fold(0u64, u64::saturating_add);
    let mut total = vec![Cell::text("Total")];
    total.extend(by_column.iter().map(|c| Cell::number(sum(&mut c.iter().copied()))));
    total.push(Cell::number(sum(&mut daily.days.iter().map(|d| d.messages))));
    total.push(Cell::number(sum(&mut daily.days.iter().map(|d| d.ai_replies))));
    rows.push(total);
    Table { caption: format!("Usage per day and WhatsApp session, {}", daily.month), header, rows }
}

/// The months of `/usage/history`, newest first.
pub fn history_table(months: &[UsageMonth]) -> Table {
    Table {
        caption: "Usage per month".to_owned(),
        header: vec!["Month".to_owned(), "Messages".to_owned(), "AI replies".to_owned()],
        rows: months
            .iter()
            .map(|m| vec![Cell::text(m.month.clone()), Cell::number(m.messages), Cell::number(m.ai_replies)])
            .collect(),
    }
}

/// The history as a chart, oldest month first (time runs left to right).
pub fn history_chart(months: &[UsageMonth]) -> BarChart {
    BarChart {
        id: "history".to_owned(),
        title: "Messages per month".to_owned(),
        unit: "messages".to_owned(),
        labels: months.iter().rev().map(|m| m.month.clone()).collect(),
        series: vec![Series { name: "Messages".to_owned(), values: months.iter().rev().map(|m| m.messages).collect() }],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use moltflow_types::UsageDay;

    use super::*;

    fn day(date: &str, messages: u64, ai: u64, sessions: &[(&str, u64)]) -> UsageDay {
        UsageDay {
            date: date.into(),
            messages,
            ai_replies: ai,
            by_session: sessions.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect::<BTreeMap<_, _>>(),
        }
    }

    fn month() -> UsageDaily {
        UsageDaily {
            month: "2026-11".into(),
            days: vec![
                day("2026-11-01", 5, 1, &[("wa-sales", 3), ("wa-help", 1)]),
                day("2026-11-02", 0, 0, &[]),
                day("2026-11-03", 2, 0, &[("wa-sales", 2)]),
            ],
        }
    }

    #[test]
    fn the_daily_table_has_a_column_per_session_unassigned_messages_and_a_total_row() {
        let t = daily_table(&month());
        assert_eq!(
            t.header,
            ["Date", "Messages: wa-help", "Messages: wa-sales", "Messages: No session", "Messages", "AI replies"]
        );
        let text = |r: &Vec<Cell>| r.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
        assert_eq!(text(&t.rows[0]), ["2026-11-01", "1", "3", "1", "5", "1"]);
        assert_eq!(text(&t.rows[1]), ["2026-11-02", "0", "0", "0", "0", "0"]);
        assert_eq!(text(&t.rows[3]), ["Total", "1", "5", "1", "7", "1"]);
    }

    #[test]
    fn without_sessions_the_table_is_date_messages_ai_replies() {
        let m = UsageDaily { month: "2026-11".into(), days: vec![day("2026-11-01", 0, 0, &[])] };
        assert_eq!(daily_table(&m).header, ["Date", "Messages", "AI replies"]);
        assert_eq!(daily_chart(&m, "d", true).series.len(), 1);
    }

    #[test]
    fn the_chart_stacks_sessions_to_the_day_totals() {
        let c = daily_chart(&month(), "daily", true);
        assert_eq!(c.series.len(), 3);
        let totals: Vec<u64> = (0..3).map(|i| c.series.iter().map(|s| s.values[i]).sum()).collect();
        assert_eq!(totals, [5, 0, 2]);
        let single = daily_chart(&month(), "daily", false);
        assert_eq!(single.series[0].values, [5, 0, 2]);
    }

    #[test]
    fn history_runs_oldest_first_in_the_chart_newest_first_in_the_table() {
        let months = vec![
            UsageMonth { month: "2026-11".into(), messages: 9, ai_replies: 1 },
            UsageMonth { month: "2026-10".into(), messages: 4, ai_replies: 0 },
        ];
        assert_eq!(history_chart(&months).labels, ["2026-10", "2026-11"]);
        assert_eq!(history_table(&months).rows[0][0].text, "2026-11");
    }
}
