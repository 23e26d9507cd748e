//! Usage (the compliance officer's page): a month picker, messages per day × WhatsApp session as
//! a chart and a table, the last 12 months, and CSV downloads of exactly the tables shown (both
//! are rendered from the same `Table`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use moltflow_core::Scope;
use moltflow_core::period::Month;

use crate::dashboard::csv;
use crate::dashboard::errors::PageResult;
use crate::dashboard::forms::{Field, FormErrors};
use crate::dashboard::kit;
use crate::dashboard::session::Viewer;
use crate::dashboard::usage_view::{daily_chart, daily_table, history_chart, history_table};
use crate::extract::QueryParams;
use crate::state::AppState;
use moltflow_app::services::principal::guards::*;

/// The month asked for (`None`: this month); an empty picker means this month too.
fn month_param(q: &QueryParams) -> Option<&str> {
    q.get("month").map(str::trim).filter(|m| !m.is_empty())
}

fn no_usage_access(viewer: &Viewer) -> Response {
    kit::page(viewer, "/usage", "Usage", None, StatusCode::OK, kit::read_only("nothing here"))
}

/// `GET /usage?month=YYYY-MM`.
pub async fn page(state: AppState, viewer: Viewer, q: QueryParams) -> PageResult {
    let Ok(reader) = viewer.principal.authorize::<UsageRead>() else {
        return Ok(no_usage_access(&viewer));
    };
    let asked = month_param(&q);
    let (daily, errors) = match state.usage().daily(&reader, asked, None).await {
        Ok(d) => (d, FormErrors::default()),
        // A bad month is said beside the picker, and this month is shown meanwhile.
        Err(err) => (state.usage().daily(&reader, None, None).await?, FormErrors::from_error(err)?),
    };
    let history = state.usage().history(&reader, None).await?;
    let shown_month = if errors.is_empty() { asked.unwrap_or(&daily.month) } else { asked.unwrap_or("") };
    let this_month = Month::of_ms(state.clock.now_ms()).to_string();
    let chart = daily_chart(&daily, "usage-daily", true);
    let table = daily_table(&daily);
    let history_chart = history_chart(&history);
    let csv_href = format!("/usage/daily.csv?month={}", daily.month);
    let body = html! {
        form.inline-form method="get" action="/usage" role="search" aria-label="Pick a month" {
            (Field::new("month", "Month").kind("month").value(shown_month)
                .hint(&format!("YYYY-MM, up to {this_month}.")).render(&errors))
            button type="submit" { "Show" }
        }
        section.card aria-labelledby="daily-title" {
            h2 #daily-title { "Per day and WhatsApp session, " (daily.month) }
            (chart.render())
            (table.render())
            p { a href=(csv_href) download { "Download this table as CSV" } }
        }
        section.card aria-labelledby="history-title" {
            h2 #history-title { "The last 12 months" }
            (history_chart.render())
            (history_table(&history).render())
            p { a href="/usage/history.csv" download { "Download this table as CSV" } }
        }
    };
    Ok(kit::page(&viewer, "/usage", "Usage", None, errors.status(), body))
}

/// `GET /usage/daily.csv?month=`: the day × session table of that month, as shown.
pub async fn daily_csv(state: AppState, viewer: Viewer, q: QueryParams) -> PageResult {
    if !viewer.may(Scope::USAGE_READ) {
        return Ok(no_usage_access(&viewer));
    }
    let daily = state.usage().daily(&viewer.principal.authorize::<UsageRead>()?, month_param(&q), None).await?;
    Ok(csv::download(&format!("usage-{}.csv", daily.month), &daily_table(&daily)).into_response())
}

/// `GET /usage/history.csv`: the 12-month table, as shown.
pub async fn history_csv(state: AppState, viewer: Viewer) -> PageResult {
    if !viewer.may(Scope::USAGE_READ) {
        return Ok(no_usage_access(&viewer));
    }
    let history = state.usage().history(&viewer.principal.authorize::<UsageRead>()?, None).await?;
    Ok(csv::download("usage-history.csv", &history_table(&history)).into_response())
}
