//! Billing: the provider, its secrets, where checkout may send customers back, and the plan
//! catalogue with its Stripe prices (read from `plans_file` here, so that a catalogue the
//! provider cannot bill stops start-up with the other configuration errors).

use std::path::PathBuf;
use std::sync::Arc;

use moltflow_core::billing::{BillingCycle, Provider};
use moltflow_core::plan::PlanCatalogue;
use secrecy::SecretString;

use super::read::Raw;
use super::{ConfigError, err};
use crate::billing::{PriceIds, plans_file};

#[derive(Clone, Debug)]
pub struct BillingConfig {
    pub provider: Provider,
    /// Whether `billing_provider` was set (environment or moltflow.toml) rather than defaulted.
    pub provider_explicit: bool,
    /// Set whenever `provider` is Stripe.
    pub stripe_secret_key: Option<SecretString>,
    pub stripe_webhook_secret: Option<SecretString>,
    pub stripe_api_base: String,
    /// How long one Stripe request may take before it is retried or given up.
    pub stripe_timeout_ms: u64,
    /// Origins (besides the public URL's) that checkout and portal may redirect to.
    pub redirect_origins: Vec<String>,
    pub plans_file: Option<PathBuf>,
    /// The plans on offer (built in, or from `plans_file`) and, with Stripe, a price for every
    /// paid plan and cycle.
    pub plans: Arc<PlanCatalogue>,
    pub prices: PriceIds,
}

impl BillingConfig {
    pub fn read(raw: &Raw) -> Result<BillingConfig, ConfigError> {
        let provider = match raw.get("billing_provider") {
            None => Provider::Local,
            Some(v) => v.parse().map_err(|_| err("billing_provider", format!("must be local or stripe, got {v:?}")))?,
        };
        let stripe_secret_key = raw.secret("stripe_secret_key");
        if provider == Provider::Stripe && stripe_secret_key.is_none() {
            return Err(err("stripe_secret_key", "is required when MOLTFLOW_BILLING_PROVIDER=stripe"));
        }
        let redirect_origins = raw.list("billing_redirect_origins", |s| {
            url::Url::parse(s)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .map(|u| u.origin().ascii_serialization())
                .ok_or_else(|| err("billing_redirect_origins", format!("not an http(s) origin: {s:?}")))
        })?;
        let plans_file = raw.get("plans_file").map(PathBuf::from);
        let (plans, prices) = match &plans_file {
            Some(path) if !path.is_file() => {
                return Err(err("plans_file", format!("no such file: {}", path.display())));
            }
            Some(path) => {
                plans_file::load(path).map_err(|e| err("plans_file", format!("{}: {e:#}", path.display())))?
            }
            None => (PlanCatalogue::builtin(), PriceIds::new()),
        };
        if provider == Provider::Stripe {
            check_stripe_prices(&plans, &prices)?;
        }
        Ok(BillingConfig {
            provider,
            provider_explicit: raw.get("billing_provider").is_some(),
            stripe_secret_key,
            stripe_webhook_secret: raw.secret("stripe_webhook_secret"),
            stripe_api_base: raw.get("stripe_api_base").unwrap_or_else(|| "https://api.stripe.com".to_owned()),
            stripe_timeout_ms: raw.number("stripe_timeout_ms", 10_000, 100, 120_000)?,
            redirect_origins,
            plans_file,
            plans: Arc::new(plans),
            prices,
        })
    }
}

/// With Stripe every paid plan needs a price in each cycle: the price is what Stripe bills.
fn check_stripe_prices(plans: &PlanCatalogue, prices: &PriceIds) -> Result<(), ConfigError> {
    for plan in plans.plans().iter().filter(|p| !p.is_free()) {
        for &cycle in BillingCycle::ALL {
            if !prices.contains_key(&(plan.plan_id.clone(), cycle)) {
                return Err(err(
                    "plans_file",
                    format!(
                        "plan {:?} has no stripe_price_id for {cycle} (needed with MOLTFLOW_BILLING_PROVIDER=stripe)",
                        plan.plan_id
                    ),
                ));
            }
        }
    }
    Ok(())
}
