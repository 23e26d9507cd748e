//! Roles of a user within its tenant, and the scope set each role holds.

use crate::scope::{Scope, ScopeSet};
use serde::{Deserialize, Serialize};

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

    /// [`Role::scopes`] with the scopes they imply, worked out once: it is read on every request.
    pub fn granted(self) -> ScopeSet {
        static GRANTED: std::sync::LazyLock<[ScopeSet; 3]> =
            std::sync::LazyLock::new(|| [Role::Member, Role::Admin, Role::Owner].map(|role| role.scopes().expanded()));
        GRANTED[self as usize]
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

crate::text_enum!(Role, "role", [Role::Member, Role::Admin, Role::Owner]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_back_what_they_write() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(*role));
            assert_eq!(Role::try_from(role.to_string()), Ok(*role));
        }
        assert_eq!(Role::ALL.len(), 3);
        assert_eq!(Role::Owner.as_str(), "owner");
        assert_eq!(Role::Admin.as_str(), "admin");
        assert_eq!(Role::Member.as_str(), "member");
    }

    #[test]
    fn a_role_is_granted_its_scopes_and_what_they_imply() {
        for role in Role::ALL {
            assert_eq!(role.granted(), role.scopes().expanded(), "{role}");
        }
        let read = Scope::parse("billing:read").unwrap();
        assert!(Role::Admin.granted().contains(read), "billing:manage is withheld, billing:read is not");
        assert!(!Role::Admin.granted().contains(Scope::parse("billing:manage").unwrap()));
    }

    #[test]
    fn unknown_or_differently_cased_roles_are_errors() {
        for text in ["", "Owner", "superuser", " member"] {
            let err = text.parse::<Role>().unwrap_err();
            assert_eq!(err.what, "role");
            assert_eq!(err.value, text);
        }
        let long = "x".repeat(500);
        assert_eq!(Role::try_from(long).unwrap_err().value.len(), 64, "echoes at most 64 characters");
    }
}
