//! Writing audit entries, inside the transaction of the change they record (or, for records of
//! a refusal that changed nothing, through the background queue of `audit_queue`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moltflow_core::clock::now_ms;
use moltflow_core::clock::rfc3339;
use moltflow_core::ids::is_uuid;
use moltflow_core::ids::new_id;
use moltflow_store::AsDbConn;
use moltflow_store::audit::{AuditRow, insert_audit, list_audit};
use moltflow_types::{AuditActor, AuditEntry, AuditPage};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::services::origin::Origin;
use crate::state::App;

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

pub async fn record(c: &mut impl AsDbConn, e: Entry<'_>) -> moltflow_store::Result<()> {
    insert_audit(c, &row(e)).await
}

/// Writes the entry stamped `at` (the use case's clock reading).
pub async fn record_at(c: &mut impl AsDbConn, e: Entry<'_>, at: i64) -> moltflow_store::Result<()> {
    insert_audit(c, &row_at(e, at)).await
}

/// The row of an entry, stamped now.
pub fn row(e: Entry<'_>) -> AuditRow {
    row_at(e, now_ms())
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

/// The cursor of a page is the last entry's id, opaque to clients.
fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

fn decode_cursor(cursor: &str) -> ApiResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|id| is_uuid(id))
        .ok_or_else(|| {
            ApiError::invalid(
                &["query", "cursor"],
                "Invalid cursor; use next_cursor from a previous page",
                "value_error",
            )
        })
}

/// A page of a tenant's audit log, newest first.
pub async fn list(
    app: &App,
    tenant_id: &str,
    limit: i64,
    cursor: Option<&str>,
    action: Option<&str>,
) -> ApiResult<AuditPage> {
    let before = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
    if action.is_some_and(|a| a.chars().count() > 100) {
        return Err(ApiError::invalid(
            &["query", "action"],
            "String should have at most 100 characters",
            "string_too_long",
        ));
    }
    let action = action.filter(|a| !a.is_empty());
    let mut conn = app.store.conn().await?;
    let mut rows = list_audit(&mut conn, tenant_id, before.as_deref(), action, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| encode_cursor(&r.id)) } else { None };
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
