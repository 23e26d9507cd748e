//! Accepted usage events: each id once per tenant, a batch in one statement.

use std::collections::HashSet;

use tracing::instrument;

use super::EventRow;
use crate::{AsDbConn, DbConn, Result};

/// Which events of a batch were new for the tenant (the others were stored before: duplicates).
#[derive(Debug, PartialEq, Eq)]
pub enum Fresh {
    All,
    /// The ids of the events that were inserted (fewer than the batch).
    Only(HashSet<String>),
}

impl Fresh {
    pub fn contains(&self, event_id: &str) -> bool {
        match self {
            Fresh::All => true,
            Fresh::Only(ids) => ids.contains(event_id),
        }
    }
}

/// Inserts the events whose id is new for the tenant (ids within `events` must be distinct).
///
/// The whole batch is ONE statement with a fixed number of parameters, so the cost is linear in
/// the batch: on SQLite the rows travel as one JSON text read by `json_each` (binding thousands of
/// `$n` parameters is quadratic, see [`CHUNK`]); on PostgreSQL as one array per column read by
/// `UNNEST`. The SQL differs per backend only here.
#[instrument(skip_all)]
pub async fn insert_events(c: &mut impl AsDbConn, tenant_id: &str, events: &[EventRow]) -> Result<Fresh> {
    if events.is_empty() {
        return Ok(Fresh::All);
    }
    let ids: Vec<String> = match c.db_conn() {
        DbConn::Sqlite(c) => {
            // `WHERE true`: SQLite's parser needs it between `SELECT … FROM` and `ON CONFLICT`.
            sqlx::query_scalar::<_, String>(
                "INSERT INTO usage_events (tenant_id, event_id, metric, quantity, session_id, day, at) \
                 SELECT $1, value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM json_each($2) WHERE true \
                 ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id",
            )
            .bind(tenant_id)
            .bind(events_json(events))
            .fetch_all(c)
            .await?
        }
        DbConn::Postgres(c) => {
            sqlx::query_scalar::<_, String>(
                "INSERT INTO usage_events (tenant_id, event_id, metric, quantity, session_id, day, at) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[]) \
                 ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id",
            )
            .bind(tenant_id)
            .bind(events.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.metric).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.quantity).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.session_id.as_deref()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.day.as_str()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
            .fetch_all(c)
            .await?
        }
    };
    Ok(if ids.len() == events.len() { Fresh::All } else { Fresh::Only(ids.into_iter().collect()) })
}

/// `[[event_id, metric, quantity, session_id|null, day, at], …]`: one batch as one JSON text.
fn events_json(events: &[EventRow]) -> String {
    let rows: Vec<_> = events
        .iter()
        .map(|e| (e.event_id.as_str(), e.metric, e.quantity, e.session_id.as_deref(), e.day.as_str(), e.at))
        .collect();
    serde_json::to_string(&rows).unwrap_or_default()
}
