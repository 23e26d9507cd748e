//! Billing use cases, methods of [`Billing`], one module each: the plans on offer and the
//! subscription view (`plans`), checkout (`checkout`), the portal (`portal`), cancelling at the
//! period's end (`cancel`), applying provider events (`events`: Stripe webhooks and the local
//! provider go through the same `apply_event`), the local provider's own steps (`local`), and
//! ending a subscription before its tenant is erased (`erasure`). Signing up with a plan creates
//! an account first and lives in `services::signup`.

mod cancel;
mod checkout;
mod erasure;
mod events;
mod local;
mod plans;
mod portal;

use moltflow_core::clock::Clock;
use moltflow_core::plan::PlanCatalogue;
use moltflow_store::Store;

pub use checkout::{Intent, Opened, check_cycle};
pub use erasure::live_provider_subscription;
pub use events::{EventOutcome, Ignored};
pub use local::LocalCheckout;
pub use plans::{limits_view, plan_view};

use crate::auth::cache::AuthCache;
use crate::billing::{PriceIds, ProviderClient, ProviderError};
use crate::services::failure::Failure;
use crate::services::usage::Usage;

/// The local provider's portal sessions: token → tenant, kept in memory for an hour.
pub type LocalPortals = moka::sync::Cache<String, String>;

/// What the billing use cases work with.
pub struct Billing<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    pub plans: &'a PlanCatalogue,
    /// The configured provider (`local`, or Stripe's client) and Stripe's price ids.
    pub provider: &'a ProviderClient,
    pub prices: &'a PriceIds,
    pub local_portals: &'a LocalPortals,
    /// This service's public URL: default redirect targets and the local provider's pages.
    pub public_url: &'a str,
    /// Other origins checkout and portal may send the customer back to.
    pub redirect_origins: &'a [String],
    /// A plan change evicts the tenant's cached principals, whose plan sets their rate limits.
    pub auth_cache: &'a AuthCache,
    /// The subscription view shows this month's usage.
    pub usage: Usage<'a>,
}

/// A provider call that failed: nothing local changed, and the client may retry.
impl From<ProviderError> for Failure {
    fn from(err: ProviderError) -> Failure {
        tracing::warn!(error = %err, "billing provider call failed");
        match err {
            ProviderError::Unavailable(_) => Failure::unavailable(
                "billing_unavailable",
                "The billing provider is not reachable right now; nothing was changed, please retry",
                Some(5),
            ),
            ProviderError::Failed(_) | ProviderError::Missing(_) => Failure::upstream(
                "billing_provider_error",
                "The billing provider refused the request; nothing was changed",
            ),
        }
    }
}
