//! The caller of a use case: a user (through a live session) or an API key, with the role and
//! scopes it holds. How a request proves who it is lives with each way in (`crate::principal`
//! for the API and MCP, the dashboard's session cookie); what the caller may do is decided here.

use std::sync::Arc;

use moltflow_core::scope::ScopeSet;
use moltflow_core::{Role, Scope};
use moltflow_store::accounts::UserRow;

use crate::services::failure::{Failure, Outcome, Refusal};

#[derive(Clone, Debug)]
pub enum Credential {
    Session { session_id: String, method: String, created_at: i64 },
    ApiKey { key_id: String },
}

#[derive(Clone, Debug)]
pub struct Principal {
    /// The user, or for a key the user who created it.
    pub user: Arc<UserRow>,
    /// The tenant's plan as of the last second.
    pub plan_id: Arc<str>,
    pub role: Role,
    /// What the caller may do, with implied scopes expanded.
    pub scopes: ScopeSet,
    pub credential: Credential,
}

impl Principal {
    pub fn tenant_id(&self) -> &str {
        &self.user.tenant_id
    }

    /// `403 insufficient_scope` naming the scope unless the caller holds it.
    pub fn require(&self, scope: Scope) -> Outcome<()> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(Failure::Forbidden(
                Refusal::new("insufficient_scope", format!("This action requires the scope {scope}"))
                    .with("required_scope", scope.name()),
            ))
        }
    }

    /// `403 scope_escalation` naming the scopes of `wanted` the caller does not hold (creating a
    /// key, taking over a key's secret, giving someone a role: nobody hands out more than they hold).
    pub fn require_within(&self, wanted: ScopeSet, what: &str) -> Outcome<()> {
        if wanted.is_subset_of(self.scopes) {
            return Ok(());
        }
        let missing: Vec<&str> = wanted.iter().filter(|s| !self.scopes.contains(*s)).map(Scope::name).collect();
        Err(Failure::Forbidden(
            Refusal::new("scope_escalation", format!("{what}: {}", missing.join(", "))).with("scopes", missing),
        ))
    }

    pub fn is_api_key(&self) -> bool {
        matches!(self.credential, Credential::ApiKey { .. })
    }

    /// The session id of a user principal; API keys get `403 user_principal_required`.
    pub fn require_user(&self) -> Outcome<&str> {
        match &self.credential {
            Credential::Session { session_id, .. } => Ok(session_id),
            Credential::ApiKey { .. } => Err(Failure::forbidden(
                "user_principal_required",
                "This action needs a user's access token, not an API key",
            )),
        }
    }

    pub fn actor(&self) -> (&'static str, String) {
        match &self.credential {
            Credential::Session { .. } => ("user", self.user.id.clone()),
            Credential::ApiKey { key_id } => ("api_key", key_id.clone()),
        }
    }
}
