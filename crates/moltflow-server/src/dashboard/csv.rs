//! CSV downloads (RFC 4180, CRLF) of a [`Table`], safe to open in a spreadsheet: a text cell that
//! a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first, also
//! after leading spaces, and their full-width forms) is written with a leading `'`, which
//! spreadsheets show as text (OWASP's advice on CSV injection). Plain numbers of numeric columns
//! (`-5`; `+4155550123` is not one: it is a phone number and gets the quote too) are written as
//! they are.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::table::{Cell, Table};

/// The CSV text: the header, then every row.
pub fn to_csv(table: &Table) -> String {
    let mut out = String::new();
    write_row(&mut out, table.header.iter().map(|h| (h.as_str(), false)));
    for row in &table.rows {
        write_row(&mut out, row.iter().map(|c: &Cell| (c.text.as_str(), c.numeric)));
    }
    out
}

fn write_row<'a>(out: &mut String, cells: impl Iterator<Item = (&'a str, bool)>) {
    for (i, (text, numeric)) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_cell(out, text, numeric);
    }
    out.push_str("\r\n");
}

/// What makes a spreadsheet read a cell as a formula when it comes first. Excel reads the
/// full-width forms (`＝`) as their ASCII letters, so they start formulas too; the small forms
/// (`﹦`) fold to the same under Unicode normalisation and are treated alike.
const FORMULA_STARTS: [char; 14] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠', '﹦', '﹢', '﹣', '﹫'];

/// Whether a spreadsheet could run `text` as a formula. Spreadsheets skip leading spaces (and
/// line breaks) before deciding, so `  =1+1` is a formula as much as `=1+1`; tab and carriage
/// return are formula starts themselves.
fn looks_like_formula(text: &str) -> bool {
    text.trim_start_matches(|c: char| c.is_whitespace() && !matches!(c, '\t' | '\r')).starts_with(FORMULA_STARTS)
}

fn write_cell(out: &mut String, text: &str, numeric: bool) {
    let neutralise = !(numeric && is_plain_number(text)) && looks_like_formula(text);
    let quote = neutralise || text.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if neutralise {
        out.push('\'');
    }
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

/// `-12`, `3.5`: a number a spreadsheet reads as a number, never as a formula.
fn is_plain_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let frac = parts.next();
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// The download response: `text/csv`, saved as `filename` (ASCII letters, digits, `-`, `_`, `.`
/// only: the caller builds it from a page name and a month), never cached.
pub fn download(filename: &str, table: &Table) -> Response {
    let safe: String = filename.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        to_csv(table),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str, numeric: bool) -> String {
        let mut out = String::new();
        write_cell(&mut out, text, numeric);
        out
    }

    #[test]
    fn formulas_are_written_as_text() {
        assert_eq!(one("=HYPERLINK(\"http://x\")", false), "\"'=HYPERLINK(\"\"http://x\"\")\"");
        assert_eq!(one("+cmd|' /C calc'!A0", false), "\"'+cmd|' /C calc'!A0\"");
        assert_eq!(one("-2+3", false), "\"'-2+3\"");
        assert_eq!(one("@SUM(A1)", false), "\"'@SUM(A1)\"");
        assert_eq!(one("\tx", false), "\"'\tx\"");
        // A phone number is text, and `+` first would make it a formula.
        assert_eq!(one("+14155550123", false), "\"'+14155550123\"");
        // A formula in a numeric column is still neutralised: only plain numbers pass.
        assert_eq!(one("=1+1", true), "\"'=1+1\"");
    }

    #[test]
    fn formulas_behind_spaces_or_in_full_width_are_written_as_text() {
        let cases = [
            ("  =HYPERLINK(\"http://x\")", "\"'  =HYPERLINK(\"\"http://x\"\")\""),
            (" +1", "\"' +1\""),
            ("   -1+2", "\"'   -1+2\""),
            (" @SUM(A1)", "\"' @SUM(A1)\""),
            (" \t=1", "\"' \t=1\""),
            ("\r=1", "\"'\r=1\""),
            ("\n=1", "\"'\n=1\""),
            ("\u{a0}\u{3000}=1", "\"'\u{a0}\u{3000}=1\""),
            ("＝1+1", "\"'＝1+1\""),
            ("＋1", "\"'＋1\""),
            ("－1", "\"'－1\""),
            ("＠SUM(A1)", "\"'＠SUM(A1)\""),
            ("  ＝1+1", "\"'  ＝1+1\""),
            ("﹦1+1", "\"'﹦1+1\""),
            // In a numeric column only a plain number is left alone.
            (" -5", "\"' -5\""),
            ("－5", "\"'－5\""),
        ];
        for (text, written) in cases {
            assert_eq!(one(text, false), written, "{text:?}");
            assert_eq!(one(text, true), written, "{text:?} in a numeric column");
        }
    }

    #[test]
    fn text_with_a_formula_character_later_is_left_alone() {
        for text in ["a=1", "name=bot, scopes=*", "2026-11-01", "x -1", "Ana Lima", "moltflow-cli/0.1.0"] {
            assert_eq!(one(text, false), if text.contains(',') { format!("\"{text}\"") } else { text.to_owned() });
        }
    }

    #[test]
    fn plain_cells_and_numbers_are_as_shown() {
        assert_eq!(one("api_key.created", false), "api_key.created");
        assert_eq!(one("42", true), "42");
        assert_eq!(one("-5", true), "-5");
        assert_eq!(one("3.25", true), "3.25");
        assert_eq!(one("", false), "");
    }

    #[test]
    fn separators_quotes_and_newlines_are_quoted() {
        assert_eq!(one("a,b", false), "\"a,b\"");
        assert_eq!(one("say \"hi\"", false), "\"say \"\"hi\"\"\"");
        assert_eq!(one("two\nlines", false), "\"two\nlines\"");
    }

    #[test]
    fn a_table_is_its_header_then_its_rows_with_crlf() {
        let t = Table {
            caption: "c".into(),
            header: vec!["Date".into(), "Messages".into()],
            rows: vec![vec![Cell::text("2026-11-01"), Cell::number(7)], vec![Cell::text("Total"), Cell::number(7)]],
        };
        assert_eq!(to_csv(&t), "Date,Messages\r\n2026-11-01,7\r\nTotal,7\r\n");
    }

    #[test]
    fn the_download_is_csv_not_cached_and_named_safely() {
        let r = download("usage-2026-11\"; x=.csv", &Table::default());
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::CONTENT_DISPOSITION], "attachment; filename=\"usage-2026-11x.csv\"");
    }
}
