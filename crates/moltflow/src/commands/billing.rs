//! `moltflow billing plans|subscription|checkout|portal|cancel`.

use clap::Subcommand;
use moltflow_types::{CheckoutRequest, PortalRequest};
use serde_json::Value;

use super::{ClientArgs, confirm};
use crate::client::Api;
use crate::client::failure::CliResult;
use crate::client::render::{cell, fields, table, used_of};

#[derive(Subcommand, Debug)]
pub enum BillingCommand {
    /// The plans with their prices and limits (needs no credential).
    Plans,
    /// The tenant's plan, status, period and limits.
    Subscription,
    /// A checkout link to upgrade: open it in a browser to pay.
    Checkout {
        /// `starter`, `pro`, `business`, … (see `moltflow billing plans`).
        #[arg(long)]
        plan: String,
        #[arg(long, default_value = "monthly", value_parser = ["monthly", "yearly"])]
        cycle: String,
    },
    /// A link to the billing portal (invoices, payment method).
    Portal,
    /// Cancel at the end of the paid period.
    Cancel {
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
}

pub async fn run(client: &ClientArgs, command: &BillingCommand) -> CliResult {
    if let BillingCommand::Plans = command {
        let reply = Api::anonymous(&client.api_url)?.get("/billing/plans").await?;
        client.emit(&reply, plans_table);
        return Ok(());
    }
    let api = client.api().await?;
    match command {
        BillingCommand::Plans => {}
        BillingCommand::Subscription => {
            let reply = api.get("/billing/subscription").await?;
            client.emit(&reply, subscription_text);
        }
        BillingCommand::Checkout { plan, cycle } => {
            let reply = api
                .post(
                    "/billing/checkout",
                    &CheckoutRequest {
                        plan_id: plan.clone(),
                        billing_cycle: cycle.clone(),
                        success_url: None,
                        cancel_url: None,
                    },
                )
                .await?;
            client
                .emit(&reply, |r| format!("Open this link to pay for {plan} ({cycle}):\n{}", cell(&r["checkout_url"])));
        }
        BillingCommand::Portal => {
            let reply = api.post("/billing/portal", &PortalRequest { return_url: None }).await?;
            client.emit(&reply, |r| format!("Billing portal:\n{}", cell(&r["portal_url"])));
        }
        BillingCommand::Cancel { yes } => {
            confirm("Cancel the subscription at the end of the paid period?", *yes)?;
            let reply = api.post_empty("/billing/cancel").await?;
            client.emit(&reply, |s| {
                format!("Cancelled: {} stays until {}.", cell(&s["plan_id"]), cell(&s["current_period_end"]))
            });
        }
    }
    Ok(())
}

fn limit(v: &Value) -> String {
    if v.is_null() { "unlimited".to_owned() } else { cell(v) }
}

fn dollars(price: &Value) -> String {
    let cents = price["amount_cents"].as_u64().unwrap_or(0);
    format!("${}.{:02}", cents / 100, cents % 100)
}

fn plans_table(plans: &Value) -> String {
    let plans = plans.as_array().cloned().unwrap_or_default();
    table(
        ["PLAN", "MONTHLY", "YEARLY", "SESSIONS", "MESSAGES/MO", "GROUPS", "LABELS", "AI REPLIES/MO"],
        plans.iter().map(|p| {
            let l = &p["limits"];
            [
                cell(&p["plan_id"]),
                dollars(&p["prices"]["monthly"]),
                dollars(&p["prices"]["yearly"]),
                limit(&l["max_sessions"]),
                limit(&l["max_messages_per_month"]),
                limit(&l["max_groups"]),
                limit(&l["max_labels"]),
                limit(&l["ai_replies_per_month"]),
            ]
        }),
    )
}

fn subscription_text(s: &Value) -> String {
    let l = &s["limits"];
    let u = &s["usage"];
    fields(&[
        ("plan", format!("{} ({})", cell(&s["display_name"]), cell(&s["plan_id"]))),
        ("status", cell(&s["status"])),
        ("cycle", cell(&s["billing_cycle"])),
        ("period ends", cell(&s["current_period_end"])),
        ("cancels at period end", cell(&s["cancel_at_period_end"])),
        ("messages this month", used_of(&u["messages_this_month"], &l["max_messages_per_month"])),
        ("AI replies this month", used_of(&u["ai_replies_this_month"], &l["ai_replies_per_month"])),
        ("sessions", used_of(&u["sessions"], &l["max_sessions"])),
        ("groups", used_of(&u["groups"], &l["max_groups"])),
        ("labels", used_of(&u["labels"], &l["max_labels"])),
    ])
}
