//! The scope catalogue (`resource:action`) and sets of scopes as bit masks, so that checking a
//! guard or intersecting a key with its creator's role costs a few instructions.

use std::fmt;

/// One catalogued scope: an index into [`CATALOGUE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(u8);

pub struct ScopeInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// Product scopes are checked by other MoltFlow services; admin ones guard this service.
    pub product: bool,
}

const fn info(name: &'static str, description: &'static str, product: bool) -> ScopeInfo {
    ScopeInfo { name, description, product }
}

pub const CATALOGUE: &[ScopeInfo] = &[
    info("sessions:read", "List WhatsApp sessions and their status", true),
    info("sessions:manage", "Create, restart and delete WhatsApp sessions", true),
    info("messages:read", "Read message history", true),
    info("messages:send", "Send messages", true),
    info("groups:read", "List WhatsApp groups and their members", true),
    info("groups:manage", "Join, leave and monitor WhatsApp groups", true),
    info("custom-groups:read", "List custom contact groups", true),
    info("custom-groups:manage", "Create and edit custom contact groups", true),
    info("bulk-send:read", "View bulk-send jobs and their progress", true),
    info("bulk-send:manage", "Create, pause and cancel bulk-send jobs", true),
    info("scheduled:read", "View scheduled messages", true),
    info("scheduled:manage", "Create and cancel scheduled messages", true),
    info("leads:read", "View detected leads and pipelines", true),
    info("leads:manage", "Update, tag and export leads", true),
    info("labels:read", "List labels", true),
    info("labels:manage", "Create, edit and apply labels", true),
    info("webhooks:read", "List webhook endpoints and deliveries", true),
    info("webhooks:manage", "Create, edit and delete webhook endpoints", true),
    info("ai:read", "View AI reply settings and knowledge base", true),
    info("ai:manage", "Configure AI auto-replies, voice transcription and knowledge base", true),
    info("reviews:read", "View collected reviews", true),
    info("reviews:manage", "Collect and manage reviews", true),
    info("a2a:read", "View agent-to-agent channels and policies", true),
    info("a2a:manage", "Manage agent-to-agent channels and content policies", true),
    info("account:read", "Read the caller's profile", false),
    info("account:manage", "Update the caller's profile and manage own API keys", false),
    info("settings:read", "Read tenant settings", false),
    info("settings:manage", "Update tenant settings and AI consent", false),
    info("usage:read", "Read usage and quotas", false),
    info("usage:write", "Report usage events, consume quota and set gauges", false),
    info("billing:read", "Read the subscription and plan limits", false),
    info("billing:manage", "Start checkouts, open the billing portal, cancel", false),
    info("members:read", "List team members and invitations", false),
    info("members:manage", "Invite, change roles of and remove team members", false),
    info("audit:read", "Read the audit log and consent records", false),
];

/// Named starting points for a key's scopes (`GET /api-keys/scopes`).
pub struct Preset {
    pub name: &'static str,
    pub description: &'static str,
    pub scopes: &'static [&'static str],
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "read-only",
        description: "Read everything, change nothing",
        scopes: &[
            "sessions:read",
            "messages:read",
            "groups:read",
            "custom-groups:read",
            "bulk-send:read",
            "scheduled:read",
            "leads:read",
            "labels:read",
            "webhooks:read",
            "ai:read",
            "reviews:read",
            "a2a:read",
            "account:read",
            "settings:read",
            "usage:read",
            "billing:read",
            "members:read",
        ],
    },
    Preset {
        name: "messaging",
        description: "Send and read messages through connected sessions",
        scopes: &["sessions:read", "messages:read", "messages:send", "groups:read", "labels:read", "usage:read"],
    },
    Preset {
        name: "outreach",
        description: "Run campaigns: bulk sends, schedules, custom groups and leads",
        scopes: &[
            "messages:send",
            "custom-groups:manage",
            "bulk-send:manage",
            "scheduled:manage",
            "leads:read",
            "labels:read",
            "usage:read",
        ],
    },
    Preset {
        name: "admin",
        description: "Administer the tenant: settings, members, keys, usage and audit",
        scopes: &["account:manage", "settings:manage", "members:manage", "usage:read", "billing:read", "audit:read"],
    },
];

/// Whether two names are equal, at compile time (for the constants below).
const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The catalogued scope named `name`; a name not in the catalogue fails the build.
const fn catalogued(name: &str) -> Scope {
    let mut i = 0;
    while i < CATALOGUE.len() {
        if same_name(CATALOGUE[i].name, name) {
            return Scope(i as u8);
        }
        i += 1;
    }
    panic!("not a catalogued scope")
}

/// The admin scopes this service's guards require, checked against the catalogue at compile time.
impl Scope {
    pub const ACCOUNT_READ: Scope = catalogued("account:read");
    pub const ACCOUNT_MANAGE: Scope = catalogued("account:manage");
    pub const SETTINGS_READ: Scope = catalogued("settings:read");
    pub const SETTINGS_MANAGE: Scope = catalogued("settings:manage");
    pub const USAGE_READ: Scope = catalogued("usage:read");
    pub const USAGE_WRITE: Scope = catalogued("usage:write");
    pub const BILLING_READ: Scope = catalogued("billing:read");
    pub const BILLING_MANAGE: Scope = catalogued("billing:manage");
    pub const MEMBERS_READ: Scope = catalogued("members:read");
    pub const MEMBERS_MANAGE: Scope = catalogued("members:manage");
    pub const AUDIT_READ: Scope = catalogued("audit:read");
}

impl Scope {
    /// A catalogued scope by name (`*` is not a scope: see [`ScopeSet::parse_list`]).
    pub fn parse(name: &str) -> Option<Scope> {
        CATALOGUE.iter().position(|s| s.name == name).map(|i| Scope(i as u8))
    }

    pub fn name(self) -> &'static str {
        CATALOGUE[self.0 as usize].name
    }

    pub fn info(self) -> &'static ScopeInfo {
        &CATALOGUE[self.0 as usize]
    }

    fn bit(self) -> u64 {
        1u64 << self.0
    }

    /// `x:manage` grants `x:read`.
    fn implied(self) -> Option<Scope> {
        let (resource, action) = self.name().split_once(':')?;
        (action == "manage").then(|| Scope::parse(&format!("{resource}:read"))).flatten()
    }

    /// This scope and the ones it implies, as a mask (computed once: guards run per request).
    fn with_implied(self) -> u64 {
        static MASKS: std::sync::LazyLock<Vec<u64>> = std::sync::LazyLock::new(|| {
            (0..CATALOGUE.len() as u8).map(Scope).map(|s| s.bit() | s.implied().map_or(0, Scope::bit)).collect()
        });
        MASKS[self.0 as usize]
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u64);

impl ScopeSet {
    pub fn empty() -> Self {
        ScopeSet(0)
    }

    pub fn all() -> Self {
        ScopeSet((1u64 << CATALOGUE.len()) - 1)
    }

    pub fn all_except(excluded: &[Scope]) -> Self {
        excluded.iter().fold(Self::all(), |set, s| ScopeSet(set.0 & !s.bit()))
    }

    /// API.md §1: every product scope plus the member's admin reads and own-account management.
    pub fn member() -> Self {
        let mut set = ScopeSet(0);
        for (i, s) in CATALOGUE.iter().enumerate() {
            let admin_ok = matches!(
                s.name,
                "account:read" | "account:manage" | "settings:read" | "usage:read" | "billing:read" | "members:read"
            );
            if s.product || admin_ok {
                set.0 |= 1u64 << i;
            }
        }
        set
    }

    pub fn from_scopes(scopes: impl IntoIterator<Item = Scope>) -> Self {
        ScopeSet(scopes.into_iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// Parses stored scope names (`*` = all); unknown names are dropped, as the catalogue only grows.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = ScopeSet(0);
        for name in names {
            if name == "*" {
                return Self::all();
            }
            if let Some(s) = Scope::parse(name) {
                set.0 |= s.bit();
            }
        }
        set
    }

    /// The set with every scope implied by one it holds (`manage` → `read`).
    pub fn expanded(self) -> Self {
        // Over the set bits only: an owner's set is every scope, expanded on every request.
        let (mut rest, mut expanded) = (self.0, self.0);
        while rest != 0 {
            expanded |= Scope(rest.trailing_zeros() as u8).with_implied();
            rest &= rest - 1;
        }
        ScopeSet(expanded)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn union(self, other: ScopeSet) -> Self {
        ScopeSet(self.0 | other.0)
    }

    pub fn intersect(self, other: ScopeSet) -> Self {
        ScopeSet(self.0 & other.0)
    }

    pub fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_all(self) -> bool {
        self == Self::all()
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        (0..CATALOGUE.len() as u8).map(Scope).filter(move |s| self.contains(*s))
    }

    /// Names in catalogue order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_fits_a_mask_and_names_are_unique() {
        assert!(CATALOGUE.len() < 64);
        let mut names: Vec<_> = CATALOGUE.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
    }

    #[test]
    fn constants_name_their_scope() {
        assert_eq!(Scope::ACCOUNT_MANAGE.name(), "account:manage");
        assert_eq!(Scope::AUDIT_READ.name(), "audit:read");
        assert_eq!(Scope::parse("usage:write"), Some(Scope::USAGE_WRITE));
    }

    #[test]
    fn manage_implies_read_but_write_and_send_do_not() {
        let set = ScopeSet::from_names(["settings:manage", "usage:write", "messages:send"]).expanded();
        assert!(set.contains(Scope::parse("settings:read").unwrap()));
        assert!(!set.contains(Scope::parse("usage:read").unwrap()));
        assert!(!set.contains(Scope::parse("messages:read").unwrap()));
    }

    #[test]
    fn member_holds_no_admin_writes() {
        let member = ScopeSet::member();
        for name in ["settings:manage", "billing:manage", "members:manage", "audit:read", "usage:write"] {
            assert!(!member.contains(Scope::parse(name).unwrap()), "{name}");
        }
        assert!(member.contains(Scope::parse("messages:send").unwrap()));
        assert!(member.contains(Scope::parse("account:manage").unwrap()));
    }

    #[test]
    fn presets_name_only_catalogued_scopes() {
        for preset in PRESETS {
            for name in preset.scopes {
                assert!(Scope::parse(name).is_some(), "{} names {name}", preset.name);
            }
        }
    }

    #[test]
    fn star_is_everything() {
        assert!(ScopeSet::from_names(["*"]).is_all());
    }
}
