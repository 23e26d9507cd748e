//! Writing audit entries, inside the transaction of the change they record (or, for records of
//! a refusal that changed nothing, through the background queue of `audit_queue`).

use moltflow_core::clock::rfc3339;
use moltflow_core::ids::{is_uuid, new_id};
use moltflow_store::audit::{AuditRow, insert_audit, list_audit};
use moltflow_store::{AsDbConn, Store};
use moltflow_types::{AuditActor, AuditEntry, AuditPage};
use serde_json::Value;

use crate::services::cursor;
use crate::services::failure::{Failure, Outcome};
use crate::services::origin::Origin;
use crate::services::principal::Authorized;
use crate::services::principal::guards::AuditRead;

/// What reading the audit log works with.
pub struct AuditLog<'a> {
    pub store: &'a Store,
}

/// Who did it: `("user", id)`, `("api_key", id)`, `("system", None)`, or an anonymous caller.
pub struct Actor {
    pub kind: &'static str,
    pub id: Option<String>,
}

impl Actor {
    pub fn user(id: &str) -> Actor {
        Actor { kind: "user", id: Some(id.to_owned()) }
    }
}

pub struct Entry<'a> {
    pub tenant_id: &'a str,
    pub actor: Actor,
    pub action: &'static str,
    pub target: Option<String>,
    pub meta: &'a Origin,
    pub details: Value,
}

/// Writes the entry stamped `at` (the use case's clock reading).
pub async fn record_at(c: &mut impl AsDbConn, e: Entry<'_>, at: i64) -> moltflow_store::Result<()> {
    insert_audit(c, &row_at(e, at)).await
}

/// The row of an entry, stamped `at`.
pub fn row_at(e: Entry<'_>, at: i64) -> AuditRow {
    AuditRow {
        id: new_id(),
        tenant_id: e.tenant_id.to_owned(),
        at,
        actor_type: e.actor.kind.to_owned(),
        actor_id: e.actor.id,
        action: e.action.to_owned(),
        target: e.target,
        ip: e.meta.ip_string(),
        user_agent: e.meta.user_agent.clone(),
        details: details_text(e.details, e.meta),
    }
}

/// The entry's details as stored, with `"via": "mcp"` (or `"dashboard"`) when the change came
/// through that way in.
fn details_text(details: Value, meta: &Origin) -> String {
    let mut details = if details.is_null() { Value::Object(Default::default()) } else { details };
    if let (Some(via), Value::Object(map)) = (meta.channel.audit_via(), &mut details) {
        map.insert("via".to_owned(), Value::from(via));
    }
    details.to_string()
}

/// The position in a page cursor is the last entry's id.
fn decode_cursor(c: &str) -> Option<String> {
    cursor::decode(c).filter(|id| is_uuid(id))
}

impl AuditLog<'_> {
    /// A page of the caller's tenant's audit log, newest first: `limit` entries (the caller
    /// bounds it), before the entry of `cursor`, of one `action` if given. Issues are at the
    /// fields `cursor` and `action`.
    pub async fn list(
        &self,
        p: &Authorized<AuditRead>,
        limit: i64,
        cursor: Option<&str>,
        action: Option<&str>,
    ) -> Outcome<AuditPage> {
        // One issue at a time, cursor first, as the API has always answered.
        let before = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => {
                Some(decode_cursor(raw).ok_or_else(|| cursor::invalid("use next_cursor from a previous page"))?)
            }
        };
        if action.is_some_and(|a| a.chars().count() > 100) {
            return Err(Failure::invalid("action", "String should have at most 100 characters", "string_too_long"));
        }
        let action = action.filter(|a| !a.is_empty());
        let mut conn = self.store.conn().await?;
        let mut rows = list_audit(&mut conn, p.tenant_id(), before.as_deref(), action, limit + 1).await?;
        let next_cursor = cursor::cut(&mut rows, limit, |r| r.id.clone());
        let items = rows
            .into_iter()
            .map(|r| AuditEntry {
                at: rfc3339(r.at),
                actor: AuditActor { kind: r.actor_type, id: r.actor_id },
                action: r.action,
                target: r.target,
                ip: r.ip,
                user_agent: r.user_agent,
                details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
                id: r.id,
            })
            .collect();
        Ok(AuditPage { items, next_cursor })
    }
}
