//! Writing audit entries, always inside the transaction of the change they record.

use moltflow_core::clock::now_ms;
use moltflow_core::ids::new_id;
use moltflow_store::AsDbConn;
use moltflow_store::audit::{AuditRow, insert_audit};
use serde_json::Value;

use crate::extract::ClientMeta;

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
    pub meta: &'a ClientMeta,
    pub details: Value,
}

pub async fn record(c: &mut impl AsDbConn, e: Entry<'_>) -> moltflow_store::Result<()> {
    insert_audit(
        c,
        &AuditRow {
            id: new_id(),
            tenant_id: e.tenant_id.to_owned(),
            at: now_ms(),
            actor_type: e.actor.kind.to_owned(),
            actor_id: e.actor.id,
            action: e.action.to_owned(),
            target: e.target,
            ip: e.meta.ip_string(),
            user_agent: e.meta.user_agent.clone(),
            details: if e.details.is_null() { "{}".to_owned() } else { e.details.to_string() },
        },
    )
    .await
}
