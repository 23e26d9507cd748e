//! `moltflow usage current|daily|history|consume|events`.

use std::io::Read;

use clap::{Args, Subcommand};
use moltflow_types::ConsumeRequest;
use serde_json::{Value, json};

use super::{ClientArgs, query};
use crate::client::failure::{CliResult, Failure};
use crate::client::render::{bar_chart, cell, table, used_of};

#[derive(Subcommand, Debug)]
pub enum UsageCommand {
    /// This month's use against the plan's limits.
    Current,
    /// Messages per day of a month, as a bar chart (per WhatsApp session with --session).
    Daily {
        /// The month, `YYYY-MM` (default: this month, UTC).
        #[arg(long)]
        month: Option<String>,
        /// Only this WhatsApp session.
        #[arg(long)]
        session: Option<String>,
    },
    /// Messages and AI replies per month, newest first.
    History {
        /// How many months (1–36, default 12).
        #[arg(long)]
        months: Option<u32>,
    },
    /// Take quota before sending: answers whether it is allowed (exit 7 when over the quota).
    Consume(ConsumeArgs),
    /// Report usage events: from a JSON file (`-` for standard input) or one event from flags.
    Events(EventsArgs),
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// `messages` or `ai_replies`.
    #[arg(long)]
    pub metric: String,
    #[arg(long, default_value_t = 1)]
    pub quantity: u64,
    #[arg(long)]
    pub session: Option<String>,
    /// The same key twice is counted once.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// A file holding `{"events": [...]}` or a bare list of events; `-` reads standard input.
    #[arg(long, conflicts_with_all = ["metric", "quantity", "session", "id"])]
    pub file: Option<String>,
    /// One event's metric (`messages` or `ai_replies`).
    #[arg(long, required_unless_present = "file")]
    pub metric: Option<String>,
    #[arg(long)]
    pub quantity: Option<u64>,
    #[arg(long)]
    pub session: Option<String>,
    /// The event's idempotency id (default: a new one).
    #[arg(long)]
    pub id: Option<String>,
}

pub async fn run(client: &ClientArgs, command: &UsageCommand) -> CliResult {
    let api = client.api().await?;
    match command {
        UsageCommand::Current => {
            let reply = api.get("/usage/current").await?;
            client.emit(&reply, current_text);
        }
        UsageCommand::Daily { month, session } => {
            let q = query(&[("month", month.clone()), ("session_id", session.clone())]);
            let reply = api.get(&format!("/usage/daily{q}")).await?;
            client.emit(&reply, daily_text);
        }
        UsageCommand::History { months } => {
            let reply =
                api.get(&format!("/usage/history{}", query(&[("months", months.map(|m| m.to_string()))]))).await?;
            client.emit(&reply, |months| {
                let rows = months.as_array().cloned().unwrap_or_default();
                table(
                    ["MONTH", "MESSAGES", "AI REPLIES"],
                    rows.iter().map(|m| [cell(&m["month"]), cell(&m["messages"]), cell(&m["ai_replies"])]),
                )
            });
        }
        UsageCommand::Consume(args) => {
            let body = ConsumeRequest {
                metric: args.metric.clone(),
                quantity: args.quantity.into(),
                session_id: args.session.clone(),
                idempotency_key: args.idempotency_key.clone(),
            };
            let reply = api.post("/usage/consume", &body).await?;
            client.emit(&reply, |r| {
                format!(
                    "allowed: {} {}; used {}, {} remaining",
                    args.quantity,
                    cell(&r["metric"]),
                    used_of(&r["used"], &r["limit"]),
                    if r["remaining"].is_null() { "unlimited".to_owned() } else { cell(&r["remaining"]) }
                )
            });
        }
        UsageCommand::Events(args) => {
            let body = events_body(args)?;
            let reply = api.post("/usage/events", &body).await?;
            client
                .emit(&reply, |r| format!("accepted {}, duplicates {}", cell(&r["accepted"]), cell(&r["duplicates"])));
        }
    }
    Ok(())
}

fn events_body(args: &EventsArgs) -> CliResult<Value> {
    if let Some(file) = &args.file {
        let mut text = String::new();
        let read = if file == "-" {
            std::io::stdin().read_to_string(&mut text).map(|_| ())
        } else {
            std::fs::read_to_string(file).map(|t| text = t)
        };
        read.map_err(|e| Failure::usage(format!("cannot read {file}: {e}")))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Failure::usage(format!("{file} is not JSON: {e}")))?;
        return Ok(if v.is_array() { json!({"events": v}) } else { v });
    }
    let metric = args.metric.clone().ok_or_else(|| Failure::usage("--metric or --file is required"))?;
    let mut event = json!({
        "id": args.id.clone().unwrap_or_else(moltflow_core::ids::new_id),
        "metric": metric,
        "quantity": args.quantity.unwrap_or(1),
    });
    if let Some(s) = &args.session {
        event["session_id"] = json!(s);
    }
    Ok(json!({"events": [event]}))
}

fn current_text(u: &Value) -> String {
    let metrics = ["messages", "ai_replies", "sessions", "groups", "labels"];
    let rows = metrics.iter().map(|m| {
        let v = &u["metrics"][m];
        let percent = match v["percent"].as_f64() {
            Some(p) if v["limit"] != json!(0) => format!("{p:.1}%"),
            _ => "-".to_owned(),
        };
        [m.to_string(), used_of(&v["used"], &v["limit"]), percent]
    });
    format!(
        "plan {}, period {} to {}\n\n{}",
        cell(&u["plan_id"]),
        cell(&u["period_start"]),
        cell(&u["period_end"]),
        table(["METRIC", "USED / LIMIT", "USED %"], rows)
    )
}

fn daily_text(d: &Value) -> String {
    let days = d["days"].as_array().cloned().unwrap_or_default();
    let rows: Vec<(String, u64)> =
        days.iter().map(|day| (cell(&day["date"]), day["messages"].as_u64().unwrap_or(0))).collect();
    let total: u64 = rows.iter().map(|(_, n)| n).sum();
    let ai: u64 = days.iter().map(|day| day["ai_replies"].as_u64().unwrap_or(0)).sum();
    format!(
        "messages per day, {}\n\n{}\n\ntotal {total} messages, {ai} AI replies",
        cell(&d["month"]),
        bar_chart(&rows, 40)
    )
}
