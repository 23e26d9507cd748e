//! Consume idempotency keys: a granted consume stored under its key, so that a retry is answered
//! as the first time, on any node.

use std::collections::HashSet;

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, DbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct ConsumptionRow {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub metric: String,
    pub quantity: i64,
    pub used: i64,
    pub limit_value: Option<i64>,
    pub at: i64,
}

/// The stored consumes of `(tenant_id, idempotency_key)` pairs (those not found are left out).
#[instrument(skip_all)]
pub async fn find_consumptions(c: &mut impl AsDbConn, keys: &[(&str, &str)]) -> Result<Vec<ConsumptionRow>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match c.db_conn() {
        DbConn::Sqlite(c) => {
            let mut rows = Vec::new();
            for (tenant_id, key) in keys {
                let row = sqlx::query_as::<_, ConsumptionRow>(
                    "SELECT tenant_id, idempotency_key, metric, quantity, used, limit_value, at \
                     FROM usage_consumptions WHERE tenant_id = $1 AND idempotency_key = $2",
                )
                .bind(tenant_id)
                .bind(key)
                .fetch_optional(&mut *c)
                .await?;
                rows.extend(row);
            }
            Ok(rows)
        }
        DbConn::Postgres(c) => Ok(sqlx::query_as::<_, ConsumptionRow>(
            "SELECT u.tenant_id, u.idempotency_key, u.metric, u.quantity, u.used, u.limit_value, u.at \
             FROM usage_consumptions u JOIN UNNEST($1::text[], $2::text[]) AS k(tenant_id, idempotency_key) \
             ON u.tenant_id = k.tenant_id AND u.idempotency_key = k.idempotency_key",
        )
        .bind(keys.iter().map(|(t, _)| *t).collect::<Vec<_>>())
        .bind(keys.iter().map(|(_, k)| *k).collect::<Vec<_>>())
        .fetch_all(c)
        .await?),
    }
}

/// Records granted consumes under their keys (distinct); the `(tenant_id, idempotency_key)` of
/// those inserted: a key missing from the answer was taken meanwhile by another node.
#[instrument(skip_all)]
pub async fn insert_consumptions(c: &mut impl AsDbConn, rows: &[ConsumptionRow]) -> Result<HashSet<(String, String)>> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    match c.db_conn() {
        DbConn::Sqlite(c) => {
            let mut inserted = HashSet::with_capacity(rows.len());
            for r in rows {
                let n = sqlx::query(
                    "INSERT INTO usage_consumptions (tenant_id, idempotency_key, metric, quantity, used, limit_value, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
                )
                .bind(&r.tenant_id)
                .bind(&r.idempotency_key)
                .bind(&r.metric)
                .bind(r.quantity)
                .bind(r.used)
                .bind(r.limit_value)
                .bind(r.at)
                .execute(&mut *c)
                .await?
                .rows_affected();
                if n == 1 {
                    inserted.insert((r.tenant_id.clone(), r.idempotency_key.clone()));
                }
            }
            Ok(inserted)
        }
        DbConn::Postgres(c) => Ok(sqlx::query_as::<_, (String, String)>(
            "INSERT INTO usage_consumptions (tenant_id, idempotency_key, metric, quantity, used, limit_value, at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[]) \
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING tenant_id, idempotency_key",
        )
        .bind(rows.iter().map(|r| r.tenant_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.idempotency_key.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.quantity).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.used).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.limit_value).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
        .fetch_all(c)
        .await?
        .into_iter()
        .collect()),
    }
}

/// Forgets idempotency keys of consumes granted before `at`; the number forgotten.
#[instrument(skip_all)]
pub async fn delete_consumptions_before(c: &mut impl AsDbConn, at: i64) -> Result<u64> {
    on_conn!(c, c => sqlx::query("DELETE FROM usage_consumptions WHERE at < $1")
        .bind(at).execute(c).await.map(|r| r.rows_affected()))
}
