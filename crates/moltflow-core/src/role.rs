//! Roles of a user within its tenant, and the scope set each role holds.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::scope::{Scope, ScopeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// What a user of this role may do, as scopes (API.md §1).
    pub fn scopes(self) -> ScopeSet {
        match self {
            Role::Owner => ScopeSet::all(),
            Role::Admin => ScopeSet::all_except(&[Scope::parse("billing:manage").expect("catalogued")]),
            Role::Member => ScopeSet::member(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(()),
        }
    }
}
