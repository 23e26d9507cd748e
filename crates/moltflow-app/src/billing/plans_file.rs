//! `MOLTFLOW_PLANS_FILE`: a TOML file that replaces the built-in plan catalogue and names the
//! Stripe price of each paid plan and cycle.
//!
//! ```toml
//! [[plans]]
//! plan_id = "pro"
//! display_name = "Pro"
//! description = "For growing teams"
//! features = ["3 WhatsApp sessions"]
//! limits = { max_sessions = 3, max_messages_per_month = 5000, max_groups = 10, max_labels = 50, ai_replies_per_month = 500 }
//! monthly = { amount_cents = 2990, stripe_price_id = "price_123" }
//! yearly = { amount_cents = 29900, stripe_price_id = "price_456" }
//! ```
//! A limit left out is unlimited; the currency defaults to `usd`.

use std::path::Path;

use moltflow_core::plan::{Limits, Plan, PlanCatalogue, Price};
use serde::Deserialize;

use moltflow_core::billing::BillingCycle;

use super::PriceIds;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    plans: Vec<PlanEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    plan_id: String,
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    limits: LimitsEntry,
    monthly: PriceEntry,
    yearly: PriceEntry,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsEntry {
    max_sessions: Option<u64>,
    max_messages_per_month: Option<u64>,
    max_groups: Option<u64>,
    max_labels: Option<u64>,
    ai_replies_per_month: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    amount_cents: u64,
    #[serde(default = "usd")]
    currency: String,
    #[serde(default)]
    stripe_price_id: Option<String>,
}

fn usd() -> String {
    "usd".to_owned()
}

/// Reads the file; errors say what is wrong with it (the caller names the variable).
pub fn load(path: &Path) -> anyhow::Result<(PlanCatalogue, PriceIds)> {
    let text = std::fs::read_to_string(path)?;
    parse(&text)
}

pub fn parse(text: &str) -> anyhow::Result<(PlanCatalogue, PriceIds)> {
    let file: File = toml::from_str(text)?;
    anyhow::ensure!(
        file.plans.iter().any(|p| p.plan_id == "free"),
        "the catalogue needs a `free` plan (new tenants start on it)"
    );
    let mut prices = PriceIds::new();
    let mut plans = Vec::new();
    for p in file.plans {
        anyhow::ensure!(
            !p.plan_id.is_empty() && p.plan_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "plan_id {:?}: letters, digits, - and _ only",
            p.plan_id
        );
        anyhow::ensure!(plans.iter().all(|q: &Plan| q.plan_id != p.plan_id), "plan_id {:?} appears twice", p.plan_id);
        for (cycle, price) in [(BillingCycle::Monthly, &p.monthly), (BillingCycle::Yearly, &p.yearly)] {
            if let Some(id) = &price.stripe_price_id {
                // A price decides the plan of whoever is billed at it: it must name one.
                anyhow::ensure!(
                    !prices.values().any(|known| known == id),
                    "stripe_price_id {id:?} appears twice (each Stripe price is one plan and cycle)"
                );
                prices.insert((p.plan_id.clone(), cycle), id.clone());
            }
        }
        plans.push(Plan {
            plan_id: p.plan_id,
            display_name: p.display_name,
            description: p.description,
            monthly: Price { amount_cents: p.monthly.amount_cents, currency: p.monthly.currency },
            yearly: Price { amount_cents: p.yearly.amount_cents, currency: p.yearly.currency },
            limits: Limits {
                max_sessions: p.limits.max_sessions,
                max_messages_per_month: p.limits.max_messages_per_month,
                max_groups: p.limits.max_groups,
                max_labels: p.limits.max_labels,
                ai_replies_per_month: p.limits.ai_replies_per_month,
            },
            features: p.features,
        });
    }
    Ok((PlanCatalogue::new(plans), prices))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[plans]]
plan_id = "free"
display_name = "Free"
limits = { max_sessions = 1, max_messages_per_month = 10 }
monthly = { amount_cents = 0 }
yearly = { amount_cents = 0 }

[[plans]]
plan_id = "pro"
display_name = "Pro"
features = ["More"]
limits = { max_sessions = 3 }
monthly = { amount_cents = 2990, stripe_price_id = "price_m" }
yearly = { amount_cents = 29900, stripe_price_id = "price_y" }
"#;

    #[test]
    fn parses_plans_limits_and_price_ids() {
        let (catalogue, prices) = parse(FILE).unwrap();
        let pro = catalogue.get("pro").unwrap();
        assert_eq!(pro.limits.max_sessions, Some(3));
        assert_eq!(pro.limits.max_messages_per_month, None, "left out = unlimited");
        assert_eq!(pro.monthly.currency, "usd");
        assert_eq!(prices.get(&("pro".into(), BillingCycle::Yearly)).map(String::as_str), Some("price_y"));
        assert_eq!(catalogue.get("free").unwrap().limits.max_messages_per_month, Some(10));
    }

    #[test]
    fn refuses_broken_files() {
        assert!(parse("plans = 3").is_err());
        assert!(parse(&FILE.replace("plan_id = \"free\"", "plan_id = \"gratis\"")).is_err(), "no free plan");
        assert!(parse(&FILE.replace("plan_id = \"pro\"", "plan_id = \"free\"")).is_err(), "duplicate");
        assert!(parse(&FILE.replace("features = [\"More\"]", "colour = \"red\"")).is_err(), "unknown key");
        assert!(parse(&FILE.replace("\"price_y\"", "\"price_m\"")).is_err(), "one price, two plans or cycles");
    }
}
