//! Billing providers: `local` (checkout and portal are pages of this service) and `stripe` (the
//! Stripe REST API). Both end in the same place: provider events applied by
//! `services::billing::Billing::apply_event`; a failed call (`ProviderError`) is a
//! `Failure` there.

pub mod events;
pub mod plans_file;
pub mod signature;
pub mod stripe;

use std::collections::HashMap;

use moltflow_core::billing::BillingCycle;

/// Stripe price ids by `(plan_id, billing_cycle)`.
pub type PriceIds = HashMap<(String, BillingCycle), String>;

pub enum ProviderClient {
    Local,
    Stripe(stripe::StripeClient),
}

impl ProviderClient {
    /// Which provider this is, as stored with the customers, checkouts and subscriptions it holds.
    pub fn kind(&self) -> moltflow_core::billing::Provider {
        match self {
            ProviderClient::Local => moltflow_core::billing::Provider::Local,
            ProviderClient::Stripe(_) => moltflow_core::billing::Provider::Stripe,
        }
    }
}

/// A provider call that did not succeed. Nothing local changes after one.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Timed out, unreachable or rate limited after retries: try again later.
    #[error("billing provider unavailable: {0}")]
    Unavailable(String),
    /// The provider answered with an error.
    #[error("billing provider error: {0}")]
    Failed(String),
    /// The provider does not know the object (`404`): for a cancellation, it is already gone.
    #[error("billing provider has no such object: {0}")]
    Missing(String),
}
