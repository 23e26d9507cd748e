//! A bar chart drawn on the server as inline SVG (no script, no style attribute: colours and
//! fonts come from classes in the stylesheet, so a `default-src 'self'` policy blocks nothing).
//! It is one image to assistive technology (`role="img"`, a title and a description that says
//! the totals), and [`BarChart::table`] is its text alternative with the same numbers.

use maud::{Markup, html};

use super::forecast::thousands;
use super::table::{Cell, Table};

/// One stacked layer of the bars (e.g. one WhatsApp session); `values[i]` belongs to `labels[i]`.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub values: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct BarChart {
    /// Unique on the page: prefixes the ids the SVG's title and description are referred by.
    pub id: String,
    pub title: String,
    /// What is counted, plural ("messages").
    pub unit: String,
    /// One per bar, e.g. the dates of the month.
    pub labels: Vec<String>,
    /// Stacked bottom to top, in this order. At least one.
    pub series: Vec<Series>,
}

/// Drawing area, in SVG user units (the SVG scales to its container's width).
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;
/// Distinct colours (classes `s0`..`s7` in the stylesheet); more series reuse them.
const PALETTE: usize = 8;

impl BarChart {
    fn total(&self, i: usize) -> u64 {
        self.series.iter().map(|s| s.values.get(i).copied().unwrap_or(0)).fold(0, u64::saturating_add)
    }

    /// The stacked pieces of bar `i`: series index, the value below it, its own value (zeros left out).
    fn segments(&self, i: usize) -> Vec<(usize, u64, u64)> {
        let mut below = 0u64;
        let mut out = Vec::new();
        for (k, s) in self.series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v > 0 {
                out.push((k, below, v));
                below = below.saturating_add(v);
            }
        }
        out
    }

    /// One sentence with what the bars show, for screen readers.
    pub fn description(&self) -> String {
        let totals: Vec<u64> = (0..self.labels.len()).map(|i| self.total(i)).collect();
        let sum = totals.iter().copied().fold(0u64, u64::saturating_add);
        let n = self.labels.len();
        let (first, last) = (self.labels.first(), self.labels.last());
        let span = match (first, last) {
            (Some(f), Some(l)) if n > 1 => format!(" from {f} to {l}"),
            (Some(f), _) => format!(" on {f}"),
            _ => String::new(),
        };
        let peak = totals.iter().enumerate().max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)));
        match peak {
            Some((i, v)) if *v > 0 => {
                format!("{} {}{span}; the most, {}, on {}.", thousands(sum), self.unit, thousands(*v), self.labels[i])
            }
            _ => format!("No {}{span}.", self.unit),
        }
    }

    /// The chart's numbers as a table: the label, each series (when there are several), the total.
    pub fn table(&self, first_column: &str) -> Table {
        let several = self.series.len() > 1;
        let mut header = vec![first_column.to_owned()];
        if several {
            header.extend(self.series.iter().map(|s| s.name.clone()));
        }
        header.push(capitalised(&self.unit));
        let rows = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let mut row = vec![Cell::text(label.clone())];
                if several {
                    row.extend(self.series.iter().map(|s| Cell::number(s.values.get(i).copied().unwrap_or(0))));
                }
                row.push(Cell::number(self.total(i)));
                row
            })
            .collect();
        Table { caption: self.title.clone(), header, rows }
    }

    pub fn render(&self) -> Markup {
        let n = self.labels.len().max(1);
        let max = (0..self.labels.len()).map(|i| self.total(i)).max().unwrap_or(0);
        let top = nice_ceiling(max);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let band = plot_w / n as f64;
        let bar_w = (band * 0.75).max(1.0);
        let y_of = |v: u64| TOP + plot_h - plot_h * (v as f64 / top as f64);
        // Every label when they fit, else about eight of them (always the first).
        let step = n.div_ceil(8).max(1);
        let title_id = format!("{}-title", self.id);
        let desc_id = format!("{}-desc", self.id);
        html! {
            figure.chart {
                svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
                    aria-labelledby=(format!("{title_id} {desc_id}")) focusable="false" {
                    title id=(title_id) { (self.title) }
                    desc id=(desc_id) { (self.description()) }
                    @for tick in [0, top / 2, top] {
                        line.grid x1=(f(LEFT)) x2=(f(WIDTH - RIGHT)) y1=(f(y_of(tick))) y2=(f(y_of(tick))) {}
                        text.axis x=(f(LEFT - 6.0)) y=(f(y_of(tick) + 4.0)) text-anchor="end" { (short(tick)) }
                    }
                    @for (i, label) in self.labels.iter().enumerate() {
                        @let x = LEFT + band * i as f64 + (band - bar_w) / 2.0;
                        g {
                            title { (label) ": " (thousands(self.total(i))) " " (self.unit) }
                            @for (k, below, v) in self.segments(i) {
                                @let (y0, y1) = (y_of(below), y_of(below.saturating_add(v)));
                                rect class=(format!("bar s{}", k % PALETTE)) x=(f(x)) y=(f(y1)) width=(f(bar_w))
                                    height=(f((y0 - y1).max(0.5))) {}
                            }
                        }
                        @if i % step == 0 {
                            text.axis x=(f(x + bar_w / 2.0)) y=(f(HEIGHT - 8.0)) text-anchor="middle" { (tick_label(label)) }
                        }
                    }
                }
                @if self.series.len() > 1 {
                    ul.legend aria-hidden="true" {
                        @for (k, s) in self.series.iter().enumerate() {
                            li { span class=(format!("swatch s{}", k % PALETTE)) {} (s.name) }
                        }
                    }
                }
            }
        }
    }
}

/// Coordinates with one decimal: enough on a 640-wide drawing, and short markup.
fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// The axis's top: the smallest of 1, 2, 5 × 10^k at or above `max` (at least 1).
fn nice_ceiling(max: u64) -> u64 {
    let mut unit = 1u64;
    loop {
        for m in [1, 2, 5] {
            let candidate = unit.saturating_mul(m);
            if candidate >= max || candidate == u64::MAX {
                return candidate.max(1);
            }
        }
        unit = unit.saturating_mul(10);
    }
}

/// `1200` → `1.2k`, `3000000` → `3M`: axis labels stay narrow.
fn short(n: u64) -> String {
    let (value, suffix) = match n {
        0..1_000 => return n.to_string(),
        1_000..1_000_000 => (n as f64 / 1e3, "k"),
        1_000_000..1_000_000_000 => (n as f64 / 1e6, "M"),
        _ => (n as f64 / 1e9, "G"),
    };
    let text = format!("{value:.1}");
    format!("{}{suffix}", text.strip_suffix(".0").unwrap_or(&text))
}

/// A date label `2026-11-05` is drawn as its day, `5`; other labels as they are.
fn tick_label(label: &str) -> &str {
    match label.as_bytes() {
        [_, _, _, _, b'-', _, _, b'-', _, _] => label[8..].trim_start_matches('0'),
        _ => label,
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|first| first.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> BarChart {
        BarChart {
            id: "daily".into(),
            title: "Messages per day, 2026-11".into(),
            unit: "messages".into(),
            labels: vec!["2026-11-01".into(), "2026-11-02".into(), "2026-11-03".into()],
            series,
        }
    }

    fn one(values: &[u64]) -> Vec<Series> {
        vec![Series { name: "All".into(), values: values.to_vec() }]
    }

    #[test]
    fn the_svg_is_an_image_with_a_title_and_a_description_of_its_numbers() {
        let html = chart(one(&[3, 0, 7])).render().into_string();
        assert!(html.contains("role=\"img\""), "{html}");
        assert!(html.contains("aria-labelledby=\"daily-title daily-desc\""), "{html}");
        assert!(html.contains("<title id=\"daily-title\">Messages per day, 2026-11</title>"), "{html}");
        assert!(
            html.contains(
                "<desc id=\"daily-desc\">10 messages from 2026-11-01 to 2026-11-03; the most, 7, on 2026-11-03.</desc>"
            ),
            "{html}"
        );
        // Two bars drawn (the zero day has none), each with its hover text.
        assert_eq!(html.matches("<rect").count(), 2, "{html}");
        assert!(html.contains("<title>2026-11-02: 0 messages</title>"), "{html}");
    }

    #[test]
    fn nothing_the_content_security_policy_would_block() {
        let html = chart(one(&[3, 0, 7])).render().into_string();
        assert!(!html.contains("style"), "inline style: {html}");
        assert!(!html.contains("<script"), "{html}");
        let handler = html.match_indices(" on").any(|(i, _)| {
            html[i + 3..].chars().take_while(char::is_ascii_lowercase).count() > 0
                && html[i + 3..].trim_start_matches(|c: char| c.is_ascii_lowercase()).starts_with('=')
        });
        assert!(!handler, "event handler attribute: {html}");
        assert!(!html.contains("http://") || html.matches("http://").count() == 1, "only the SVG namespace: {html}");
    }

    #[test]
    fn bars_are_as_tall_as_their_share_of_the_axis() {
        // Axis top is 10 (nice ceiling of 7): a 7 is 70 % of the 184-unit plot.
        let html = chart(one(&[0, 0, 7])).render().into_string();
        let plot_h = HEIGHT - TOP - BOTTOM;
        assert!(html.contains(&format!("height=\"{}\"", f(plot_h * 0.7))), "{html}");
    }

    #[test]
    fn series_stack_and_get_a_legend_and_table_columns() {
        let c = chart(vec![
            Series { name: "sess-a".into(), values: vec![1, 2, 0] },
            Series { name: "sess-b".into(), values: vec![4, 0, 0] },
        ]);
        let html = c.render().into_string();
        assert!(html.contains("class=\"bar s0\""), "{html}");
        assert!(html.contains("class=\"bar s1\""), "{html}");
        assert!(html.contains("<ul class=\"legend\""), "{html}");
        assert!(html.contains("<title>2026-11-01: 5 messages</title>"), "{html}");
        let t = c.table("Date");
        assert_eq!(t.header, vec!["Date", "sess-a", "sess-b", "Messages"]);
        assert_eq!(t.rows[0], vec![Cell::text("2026-11-01"), Cell::number(1), Cell::number(4), Cell::number(5)]);
    }

    #[test]
    fn an_empty_month_is_described_as_empty() {
        let c = chart(one(&[0, 0, 0]));
        assert_eq!(c.description(), "No messages from 2026-11-01 to 2026-11-03.");
        assert!(!c.render().into_string().contains("<rect"));
        let none = BarChart { labels: vec![], ..chart(one(&[])) };
        assert_eq!(none.description(), "No messages.");
        none.render();
    }

    #[test]
    fn titles_and_names_are_escaped() {
        let mut c = chart(vec![
            Series { name: "<script>".into(), values: vec![1, 1, 1] },
            Series { name: "b".into(), values: vec![1, 1, 1] },
        ]);
        c.title = "a</title><script>".into();
        let html = c.render().into_string();
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(50), 50);
        assert_eq!(nice_ceiling(51), 100);
        assert_eq!(nice_ceiling(u64::MAX), u64::MAX);
        assert_eq!(short(999), "999");
        assert_eq!(short(1200), "1.2k");
        assert_eq!(short(3_000_000), "3M");
        assert_eq!(tick_label("2026-11-05"), "5");
        assert_eq!(tick_label("2026-11-10"), "10");
        assert_eq!(tick_label("sess"), "sess");
    }
}
