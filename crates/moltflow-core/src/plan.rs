//! Plans and their limits: the built-in catalogue of API.md §6.
//!
//! The catalogue is data, not code, so that billing can replace it from a plans file; services
//! ask [`PlanCatalogue::get`] for the tenant's `plan_id` on every quota decision, so a plan change
//! takes effect on the next one.

/// What one billing cycle charges, in the smallest unit of `currency`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    pub amount_cents: u64,
    pub currency: String,
}

/// `None` means unlimited.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Limits {
    pub max_sessions: Option<u64>,
    pub max_messages_per_month: Option<u64>,
    pub max_groups: Option<u64>,
    pub max_labels: Option<u64>,
    pub ai_replies_per_month: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub plan_id: String,
    pub display_name: String,
    pub description: String,
    pub monthly: Price,
    pub yearly: Price,
    pub limits: Limits,
    pub features: Vec<String>,
}

impl Plan {
    /// What one `cycle` of this plan charges.
    pub fn price(&self, cycle: crate::billing::BillingCycle) -> &Price {
        match cycle {
            crate::billing::BillingCycle::Monthly => &self.monthly,
            crate::billing::BillingCycle::Yearly => &self.yearly,
        }
    }

    /// Free in both cycles: nothing to check out.
    pub fn is_free(&self) -> bool {
        self.monthly.amount_cents == 0 && self.yearly.amount_cents == 0
    }
}

/// The plans on offer, in display order.
#[derive(Clone, Debug)]
pub struct PlanCatalogue {
    plans: Vec<Plan>,
}

/// The plan a new tenant starts on.
pub const DEFAULT_PLAN: &str = "free";

impl PlanCatalogue {
    pub fn new(plans: Vec<Plan>) -> PlanCatalogue {
        PlanCatalogue { plans }
    }

    pub fn get(&self, plan_id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.plan_id == plan_id)
    }

    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// The built-in catalogue of API.md §6.
    pub fn builtin() -> PlanCatalogue {
        let limited = |s, m, g, l, ai| Limits {
            max_sessions: Some(s),
            max_messages_per_month: Some(m),
            max_groups: Some(g),
            max_labels: Some(l),
            ai_replies_per_month: Some(ai),
        };
        PlanCatalogue::new(vec![
            plan(
                "free",
                "Free",
                "Try MoltFlow with one WhatsApp number",
                (0, 0),
                limited(1, 50, 2, 10, 0),
                &["1 WhatsApp session", "50 messages a month", "Group monitoring (2 groups)", "Labels"],
            ),
            plan(
                "starter",
                "Starter",
                "For solo operators sending their first campaigns",
                (990, 9_900),
                limited(2, 1_000, 5, 20, 100),
                &["2 WhatsApp sessions", "1,000 messages a month", "100 AI replies a month", "Scheduled messages"],
            ),
            plan(
                "pro",
                "Pro",
                "For growing teams automating sales on WhatsApp",
                (2_990, 29_900),
                limited(3, 5_000, 10, 50, 500),
                &[
                    "3 WhatsApp sessions",
                    "5,000 messages a month",
                    "500 AI replies a month",
                    "Bulk send",
                    "Lead detection",
                    "Webhooks",
                ],
            ),
            plan(
                "business",
                "Business",
                "Unlimited sessions, messages and AI replies for agencies",
                (4_990, 23_880),
                Limits::default(),
                &[
                    "Unlimited WhatsApp sessions",
                    "Unlimited messages",
                    "Unlimited AI replies",
                    "Agent-to-agent channels",
                    "Priority support",
                ],
            ),
        ])
    }
}

fn plan(id: &str, name: &str, description: &str, prices: (u64, u64), limits: Limits, features: &[&str]) -> Plan {
    let usd = |amount_cents| Price { amount_cents, currency: "usd".to_owned() };
    Plan {
        plan_id: id.to_owned(),
        display_name: name.to_owned(),
        description: description.to_owned(),
        monthly: usd(prices.0),
        yearly: usd(prices.1),
        limits,
        features: features.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_matches_the_contract() {
        let c = PlanCatalogue::builtin();
        let ids: Vec<_> = c.plans().iter().map(|p| p.plan_id.as_str()).collect();
        assert_eq!(ids, ["free", "starter", "pro", "business"]);
        let pro = c.get("pro").unwrap();
        assert_eq!(pro.limits.max_messages_per_month, Some(5_000));
        assert_eq!((pro.monthly.amount_cents, pro.yearly.amount_cents), (2_990, 29_900));
        assert_eq!(c.get("free").unwrap().limits.ai_replies_per_month, Some(0));
        assert_eq!(c.get("business").unwrap().limits, Limits::default());
        assert_eq!(c.get("business").unwrap().yearly.amount_cents, 23_880);
        assert!(c.get("enterprise").is_none());
        assert!(c.get(DEFAULT_PLAN).is_some());
    }
}
