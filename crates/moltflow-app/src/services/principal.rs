//! The caller of a use case: a user (through a live session) or an API key, with the role and
//! scopes it holds. How a request proves who it is lives with each way in (`crate::principal`
//! for the API and MCP, the dashboard's session cookie); what the caller may do is decided here.

use std::marker::PhantomData;
use std::ops::Deref;
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

/// A scope a use case requires, as a type: a use case that takes [`Authorized<G>`] cannot be
/// called by a way in that did not check `G::SCOPE` first.
pub trait ScopeGuard {
    const SCOPE: Scope;
}

/// The caller, proven to hold `G::SCOPE`. Only [`Authorized::new`] (or [`Principal::authorize`])
/// makes one, so holding it is the proof.
pub struct Authorized<G> {
    principal: Principal,
    guard: PhantomData<fn() -> G>,
}

impl<G: ScopeGuard> Authorized<G> {
    /// `403 insufficient_scope` naming `G::SCOPE` unless the caller holds it.
    pub fn new(principal: Principal) -> Outcome<Self> {
        principal.require(G::SCOPE)?;
        Ok(Authorized { principal, guard: PhantomData })
    }
}

impl<G> Authorized<G> {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

impl<G> Clone for Authorized<G> {
    fn clone(&self) -> Self {
        Authorized { principal: self.principal.clone(), guard: PhantomData }
    }
}

impl<G> Deref for Authorized<G> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

/// The caller, proven to be a user signed in with a session (an access token or the dashboard's
/// cookie), not an API key: what only the person may do (sign out, change the password, delete
/// the account).
#[derive(Clone)]
pub struct UserSession {
    principal: Principal,
}

impl UserSession {
    /// `403 user_principal_required` for an API key.
    pub fn new(principal: Principal) -> Outcome<Self> {
        principal.require_user()?;
        Ok(UserSession { principal })
    }

    pub fn session_id(&self) -> &str {
        match &self.principal.credential {
            Credential::Session { session_id, .. } => session_id,
            // `new` admits sessions only.
            Credential::ApiKey { .. } => "",
        }
    }
}

impl Deref for UserSession {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl Principal {
    /// This caller's proof for `G`, or `403 insufficient_scope`.
    pub fn authorize<G: ScopeGuard>(&self) -> Outcome<Authorized<G>> {
        Authorized::new(self.clone())
    }

    /// This caller's proof of a user session, or `403 user_principal_required`.
    pub fn user_session(&self) -> Outcome<UserSession> {
        UserSession::new(self.clone())
    }
}

/// The guards, one type per scope a use case requires.
pub mod guards {
    use moltflow_core::Scope;

    use super::ScopeGuard;

    macro_rules! scope_guards {
        ($($name:ident = $scope:ident),* $(,)?) => {
            $(
                #[doc = concat!("Requires `Scope::", stringify!($scope), "`.")]
                pub struct $name;
                impl ScopeGuard for $name {
                    const SCOPE: Scope = Scope::$scope;
                }
            )*
        };
    }

    scope_guards!(
        AccountRead = ACCOUNT_READ,
        AccountManage = ACCOUNT_MANAGE,
        SettingsRead = SETTINGS_READ,
        SettingsManage = SETTINGS_MANAGE,
        UsageRead = USAGE_READ,
        UsageWrite = USAGE_WRITE,
        BillingRead = BILLING_READ,
        BillingManage = BILLING_MANAGE,
        MembersRead = MEMBERS_READ,
        MembersManage = MEMBERS_MANAGE,
        AuditRead = AUDIT_READ,
    );
}
