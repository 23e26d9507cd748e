//! The composition root: each use case is built here from the parts of the [`App`] it needs, so
//! a use case sees its store, clock and collaborators and nothing else (and a test can build one
//! from just those).

use crate::services::api_keys::ApiKeys;
use crate::services::billing::Billing;
use crate::services::usage::Usage;
use crate::state::App;

impl App {
    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys { store: &self.store, clock: &self.clock, auth_cache: &self.auth_cache }
    }

    pub fn usage(&self) -> Usage<'_> {
        Usage { store: &self.store, clock: &self.clock, plans: &self.plans, writer: &self.usage }
    }

    pub fn billing(&self) -> Billing<'_> {
        Billing {
            store: &self.store,
            clock: &self.clock,
            plans: &self.plans,
            provider: &self.billing.provider,
            prices: &self.billing.prices,
            local_portals: &self.billing.local_portals,
            public_url: &self.config.server.public_url,
            redirect_origins: &self.config.billing.redirect_origins,
            auth_cache: &self.auth_cache,
            usage: self.usage(),
        }
    }
}
