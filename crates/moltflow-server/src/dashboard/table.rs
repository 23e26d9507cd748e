//! A data table as the pages show it, and the same table as CSV: both are rendered from one
//! `Table`, so a download holds exactly what is on screen (the compliance officer's evidence).

use maud::{Markup, html};

/// One cell's text; numbers are right-aligned on screen and written unquoted in CSV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub numeric: bool,
}

impl Cell {
    pub fn text(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), numeric: false }
    }

    pub fn number(n: u64) -> Cell {
        Cell { text: n.to_string(), numeric: true }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Said by screen readers before the table; the visible heading is the page's.
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// The table as HTML; the first cell of a row heads it (`<th scope="row">`).
    pub fn render(&self) -> Markup {
        html! {
            // Focusable, so that a keyboard can scroll a table wider than the screen.
            div.table-wrap tabindex="0" role="region" aria-label=(self.caption) {
                table {
                    caption { (self.caption) }
                    thead { tr { @for h in &self.header { th scope="col" { (h) } } } }
                    tbody {
                        @if self.rows.is_empty() {
                            tr { td colspan=(self.header.len().max(1)) { "Nothing to show." } }
                        }
                        @for row in &self.rows {
                            tr {
                                @for (i, cell) in row.iter().enumerate() {
                                    @if i == 0 {
                                        th scope="row" class=[cell.numeric.then_some("num")] { (cell.text) }
                                    } @else {
                                        td class=[cell.numeric.then_some("num")] { (cell.text) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_escaped_and_rows_headed() {
        let t = Table {
            caption: "Messages".into(),
            header: vec!["Date".into(), "Count".into()],
            rows: vec![vec![Cell::text("<b>x</b>"), Cell::number(3)]],
        };
        let html = t.render().into_string();
        assert!(html.contains("<th scope=\"row\">&lt;b&gt;x&lt;/b&gt;</th>"), "{html}");
        assert!(html.contains("<td class=\"num\">3</td>"), "{html}");
        assert!(html.contains("<caption>Messages</caption>"), "{html}");
    }

    #[test]
    fn an_empty_table_says_so() {
        let t = Table { caption: "x".into(), header: vec!["a".into(), "b".into()], rows: vec![] };
        assert!(t.render().into_string().contains("<td colspan=\"2\">Nothing to show.</td>"));
    }
}
