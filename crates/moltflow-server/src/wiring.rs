//! The composition root: each use case is built here from the parts of the [`App`] it needs, so
//! a use case sees its store, clock and collaborators and nothing else (and a test can build one
//! from just those).

use crate::services::api_keys::ApiKeys;
use crate::state::App;

impl App {
    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys { store: &self.store, clock: &self.clock, auth_cache: &self.auth_cache }
    }
}
