//! Human output: aligned tables, key/value blocks and a terminal bar chart. `--json` bypasses all
//! of it and prints the API's body unchanged.

use serde_json::Value;
use unicode_width::UnicodeWidthStr;

/// An aligned table without borders, header first, two spaces between columns.
pub fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) -> String {
    let rows: Vec<[String; N]> = std::iter::once(header.map(str::to_owned)).chain(rows).collect();
    let mut widths = [0usize; N];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.width());
        }
    }
    let line = |row: &[String; N]| {
        let mut out = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            out.push_str(c);
            if i + 1 < N {
                out.push_str(&" ".repeat(w - c.width() + 2));
            }
        }
        out.trim_end().to_owned()
    };
    rows.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// Label/value lines, labels aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{k:<width$}  {v}")).collect::<Vec<_>>().join("\n")
}

/// One bar per row, scaled to the largest value: `2026-11-03  ████████▌ 120`.
pub fn bar_chart(rows: &[(String, u64)], width: usize) -> String {
    const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let max = rows.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let label_width = rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(rows.len());
    for (label, value) in rows {
        let eighths = (*value as u128 * width as u128 * 8 / max as u128) as usize;
        let bar = format!("{}{}", "█".repeat(eighths / 8), EIGHTHS[eighths % 8]);
        out.push(format!("{label:<label_width$}  {bar}{} {value}", " ".repeat(width - bar.width().min(width))));
    }
    out.join("\n")
}

/// A JSON value as a table cell: strings bare, null as `-`, lists joined.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// `120 / 1000`, `120 / unlimited`, `not included` for a limit of 0.
pub fn used_of(used: &Value, limit: &Value) -> String {
    match limit {
        Value::Null => format!("{} / unlimited", cell(used)),
        Value::Number(n) if n.as_u64() == Some(0) => "not included".to_owned(),
        _ => format!("{} / {}", cell(used), cell(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bars_scale_to_the_largest_value() {
        let chart = bar_chart(&[("a".into(), 10), ("bb".into(), 5), ("c".into(), 0)], 4);
        assert_eq!(chart, "a   ████ 10\nbb  ██   5\nc        0");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(["ID", "NAME"], [["1".to_owned(), "alpha".to_owned()], ["22".to_owned(), "b".to_owned()]]);
        assert_eq!(t, "ID  NAME\n1   alpha\n22  b");
    }

    #[test]
    fn a_zero_limit_reads_not_included() {
        assert_eq!(used_of(&json!(0), &json!(0)), "not included");
        assert_eq!(used_of(&json!(3), &json!(null)), "3 / unlimited");
    }
}
