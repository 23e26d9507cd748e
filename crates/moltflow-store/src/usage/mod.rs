//! Usage metering: accepted events, daily and monthly sums, gauges, and consume idempotency keys.
//!
//! A consume batch locks its monthly counters ([`lock_monthly`]) and decides against the locked
//! totals, so a limit holds across nodes as well as within one.

use std::collections::HashSet;

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, DbConn, Result, on_conn};

mod consumptions;
mod events;
pub use consumptions::{ConsumptionRow, delete_consumptions_before, find_consumptions, insert_consumptions};
pub use events::{Fresh, insert_events};

/// Rows per multi-row statement. Far below SQLite's 32766-parameter cap, and small on purpose:
/// SQLite finds `$n` parameters by a linear scan of the statement's parameter list (when preparing,
/// and sqlx again when binding), so one statement of n parameters costs O(n²). Measured on a
/// 1000-event batch: one 7000-parameter statement ~100 ms, chunks of 64 rows a few ms.
pub(super) const CHUNK: usize = 64;

#[derive(Clone, Debug)]
pub struct EventRow {
    pub event_id: String,
    pub metric: &'static str,
    pub quantity: i64,
    pub session_id: Option<String>,
    pub day: String,
    pub at: i64,
}

/// One daily sum to add: `session_id` is `""` for usage that named no session.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DailyKey {
    pub tenant_id: String,
    pub day: String,
    pub session_id: String,
    pub metric: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonthlyKey {
    pub tenant_id: String,
    pub month: String,
    pub metric: &'static str,
}

/// One daily sum as read back, borrowed from a [`DailyFolded`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyRow<'a> {
    pub day: &'a str,
    pub session_id: &'a str,
    pub metric: &'a str,
    pub quantity: i64,
}

/// Daily sums folded into one text by the database: a line per row,
/// `day \t session_id \t metric \t quantity`. Read with [`DailyFolded::rows`], without a copy.
#[derive(Clone, Debug, Default)]
pub struct DailyFolded(String);

impl DailyFolded {
    pub fn rows(&self) -> impl Iterator<Item = Result<DailyRow<'_>>> {
        self.0.split('\n').filter(|l| !l.is_empty()).map(|line| {
            // day and session first, then metric and quantity: split the last two off from the right.
            let mut right = line.rsplitn(3, '\t');
            let bad = || crate::StoreError::corrupt(format!("usage_daily: malformed folded row {line:?}"));
            let (Some(quantity), Some(metric), Some(left)) = (right.next(), right.next(), right.next()) else {
                return Err(bad());
            };
            let (Some((day, session_id)), Ok(quantity)) = (left.split_once('\t'), quantity.parse::<i64>()) else {
                return Err(bad());
            };
            Ok(DailyRow { day, session_id, metric, quantity })
        })
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct MonthlyRow {
    pub month: String,
    pub metric: String,
    pub used: i64,
}

pub(super) fn values_clause(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..columns {
            if c > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(r * columns + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Adds to daily sums; keys must be distinct (PostgreSQL refuses to update one row twice).
#[instrument(skip_all)]
async fn add_daily(c: &mut impl AsDbConn, sums: &[(DailyKey, i64)]) -> Result<()> {
    for chunk in sums.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO usage_daily (tenant_id, day, session_id, metric, quantity) VALUES {} \
             ON CONFLICT (tenant_id, day, session_id, metric) DO UPDATE SET quantity = usage_daily.quantity + excluded.quantity",
            values_clause(chunk.len(), 5)
        );
        on_conn!(c, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for (k, n) in chunk {
                q = q.bind(&k.tenant_id).bind(&k.day).bind(&k.session_id).bind(k.metric).bind(*n);
            }
            q.execute(c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Adds to monthly counters without a limit (reported events); keys must be distinct.
#[instrument(skip_all)]
pub async fn add_monthly(c: &mut impl AsDbConn, sums: &[(MonthlyKey, i64)]) -> Result<()> {
    for chunk in sums.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO usage_monthly (tenant_id, month, metric, used) VALUES {} \
             ON CONFLICT (tenant_id, month, metric) DO UPDATE SET used = usage_monthly.used + excluded.used",
            values_clause(chunk.len(), 4)
        );
        on_conn!(c, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for (k, n) in chunk {
                q = q.bind(&k.tenant_id).bind(&k.month).bind(k.metric).bind(*n);
            }
            q.execute(c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// The tenant's counters of months `from..=to` (keys compare as text).
#[instrument(skip_all)]
pub async fn monthly_between(c: &mut impl AsDbConn, tenant_id: &str, from: &str, to: &str) -> Result<Vec<MonthlyRow>> {
    on_conn!(c, c => sqlx::query_as::<_, MonthlyRow>(
        "SELECT month, metric, used FROM usage_monthly WHERE tenant_id = $1 AND month >= $2 AND month <= $3")
        .bind(tenant_id).bind(from).bind(to)
        .fetch_all(c).await)
}

/// The tenant's daily sums of days `from..=to`, of one session when `session_id` is given.
///
/// The rows come back folded into ONE text value (`day \t session \t metric \t quantity`, one
/// line each), read without a copy by [`DailyFolded::rows`]: a month is up to 31 days × sessions × 2 metrics rows, and sqlx
/// hands SQLite rows over one at a time from its worker thread, which cost more than the query.
/// Ids never contain control characters (the API refuses them), so tabs and newlines are safe
/// separators; the SQL differs per backend only in the aggregate's name.
#[instrument(skip_all)]
pub async fn daily_between(
    c: &mut impl AsDbConn,
    tenant_id: &str,
    from: &str,
    to: &str,
    session_id: Option<&str>,
) -> Result<DailyFolded> {
    let folded: Option<String> = match c.db_conn() {
        DbConn::Sqlite(c) => sqlx::query_scalar(
            "SELECT group_concat(day || char(9) || session_id || char(9) || metric || char(9) || quantity, char(10)) \
                 FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3 \
                 AND (CAST($4 AS TEXT) IS NULL OR session_id = $4)",
        )
        .bind(tenant_id)
        .bind(from)
        .bind(to)
        .bind(session_id)
        .fetch_one(c)
        .await?,
        DbConn::Postgres(c) => sqlx::query_scalar(
            "SELECT string_agg(day || chr(9) || session_id || chr(9) || metric || chr(9) || quantity::text, chr(10)) \
                 FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3 \
                 AND (CAST($4 AS TEXT) IS NULL OR session_id = $4)",
        )
        .bind(tenant_id)
        .bind(from)
        .bind(to)
        .bind(session_id)
        .fetch_one(c)
        .await?,
    };
    Ok(DailyFolded(folded.unwrap_or_default()))
}

/// Monthly counter keys as one array per column (tenant, month, metric), for `UNNEST` on
/// PostgreSQL.
fn monthly_columns<'a>(
    keys: impl Iterator<Item = &'a MonthlyKey> + Clone,
) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'static str>) {
    (
        keys.clone().map(|k| k.tenant_id.as_str()).collect(),
        keys.clone().map(|k| k.month.as_str()).collect(),
        keys.map(|k| k.metric).collect(),
    )
}

/// A monthly counter as locked by [`lock_monthly`], with its tenant's plan as of the lock (`None`:
/// the tenant is gone).
#[derive(Clone, Debug, FromRow)]
pub struct LockedCounter {
    pub tenant_id: String,
    pub month: String,
    pub metric: String,
    pub used: i64,
    pub plan_id: Option<String>,
}

/// Locks the counters `keys` (distinct, in key order) until the transaction ends, creating the
/// missing ones at 0, and reads them with their tenants' plans. A consume batch decides its
/// grants from these values: on PostgreSQL the row locks make another node's batch wait for this
/// commit and then read the new totals, so no two nodes can grant past a limit together; on
/// SQLite the writer's transaction holds the database's write lock. Rows are locked in key order,
/// so concurrent batches cannot deadlock on them. On PostgreSQL this is one statement once the
/// month's counters exist (each round trip of a batch is paid by every request waiting on it).
#[instrument(skip_all)]
pub async fn lock_monthly(c: &mut impl AsDbConn, keys: &[MonthlyKey]) -> Result<Vec<LockedCounter>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match c.db_conn() {
        DbConn::Sqlite(c) => {
            let mut rows = Vec::with_capacity(keys.len());
            for k in keys {
                let row = sqlx::query_as::<_, LockedCounter>(
                    "INSERT INTO usage_monthly (tenant_id, month, metric, used) VALUES ($1, $2, $3, 0) \
                     ON CONFLICT (tenant_id, month, metric) DO UPDATE SET used = usage_monthly.used \
                     RETURNING tenant_id, month, metric, used, \
                     (SELECT plan_id FROM tenants WHERE id = usage_monthly.tenant_id) AS plan_id",
                )
                .bind(&k.tenant_id)
                .bind(&k.month)
                .bind(k.metric)
                .fetch_one(&mut *c)
                .await?;
                rows.push(row);
            }
            Ok(rows)
        }
        DbConn::Postgres(c) => {
            const LOCK: &str = "SELECT m.tenant_id, m.month, m.metric, m.used, t.plan_id FROM usage_monthly m \
                 JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(tenant_id, month, metric) \
                 ON m.tenant_id = k.tenant_id AND m.month = k.month AND m.metric = k.metric \
                 LEFT JOIN tenants t ON t.id = m.tenant_id \
                 ORDER BY m.tenant_id, m.month, m.metric FOR UPDATE OF m";
            let (t, m, x) = monthly_columns(keys.iter());
            let mut rows: Vec<LockedCounter> =
                sqlx::query_as(LOCK).bind(&t).bind(&m).bind(&x).fetch_all(&mut *c).await?;
            if rows.len() < keys.len() {
                // A new month (or tenant): create the missing counters, then lock those too.
                let found: HashSet<(&str, &str, &str)> =
                    rows.iter().map(|r| (r.tenant_id.as_str(), r.month.as_str(), r.metric.as_str())).collect();
                let missing: Vec<&MonthlyKey> = keys
                    .iter()
                    .filter(|k| !found.contains(&(k.tenant_id.as_str(), k.month.as_str(), k.metric)))
                    .collect();
                let (t, m, x) = monthly_columns(missing.into_iter());
                sqlx::query(
                    "INSERT INTO usage_monthly (tenant_id, month, metric, used) \
                     SELECT *, 0 FROM UNNEST($1::text[], $2::text[], $3::text[]) \
                     ON CONFLICT (tenant_id, month, metric) DO NOTHING",
                )
                .bind(&t)
                .bind(&m)
                .bind(&x)
                .execute(&mut *c)
                .await?;
                let more: Vec<LockedCounter> =
                    sqlx::query_as(LOCK).bind(&t).bind(&m).bind(&x).fetch_all(&mut *c).await?;
                rows.extend(more);
            }
            Ok(rows)
        }
    }
}

/// What a usage batch writes once it has decided: the new totals of the counters it locked
/// ([`lock_monthly`]), additions to monthly counters it did not lock (reported events), and
/// additions to daily sums. Keys are distinct within each list, and no key is both set and added.
#[derive(Debug, Default)]
pub struct SumWrites {
    pub set_monthly: Vec<(MonthlyKey, i64)>,
    pub add_monthly: Vec<(MonthlyKey, i64)>,
    pub add_daily: Vec<(DailyKey, i64)>,
}

/// Writes a batch's sums: on PostgreSQL in two statements, the monthly counters then the daily
/// sums (arrays per column, so their text never changes and stays prepared); on SQLite, in
/// process, a statement per list.
#[instrument(skip_all)]
pub async fn write_sums(c: &mut impl AsDbConn, w: &SumWrites) -> Result<()> {
    if w.set_monthly.is_empty() && w.add_monthly.is_empty() && w.add_daily.is_empty() {
        return Ok(());
    }
    if let DbConn::Postgres(c) = c.db_conn() {
        let (set, add, daily) = (&w.set_monthly, &w.add_monthly, &w.add_daily);
        // Monthly counters first, daily sums after, in two statements: every batch on every node
        // takes row locks in that order, so batches cannot deadlock. (Within one statement the
        // order is not ours: PostgreSQL runs a `WITH` nobody reads after the main query.) The
        // `UPDATE` of counters this batch locked waits for nobody, whenever it runs.
        if !set.is_empty() || !add.is_empty() {
            let (set_t, set_m, set_x) = monthly_columns(set.iter().map(|(k, _)| k));
            let (add_t, add_m, add_x) = monthly_columns(add.iter().map(|(k, _)| k));
            sqlx::query(
                "WITH set_monthly AS ( \
                   UPDATE usage_monthly m SET used = v.used \
                   FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS v(tenant_id, month, metric, used) \
                   WHERE m.tenant_id = v.tenant_id AND m.month = v.month AND m.metric = v.metric) \
                 INSERT INTO usage_monthly (tenant_id, month, metric, used) \
                 SELECT * FROM UNNEST($5::text[], $6::text[], $7::text[], $8::int8[]) \
                 ON CONFLICT (tenant_id, month, metric) DO UPDATE SET used = usage_monthly.used + excluded.used",
            )
            .bind(set_t)
            .bind(set_m)
            .bind(set_x)
            .bind(set.iter().map(|(_, n)| *n).collect::<Vec<_>>())
            .bind(add_t)
            .bind(add_m)
            .bind(add_x)
            .bind(add.iter().map(|(_, n)| *n).collect::<Vec<_>>())
            .execute(&mut *c)
            .await?;
        }
        if !daily.is_empty() {
            sqlx::query(
                "INSERT INTO usage_daily (tenant_id, day, session_id, metric, quantity) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
                 ON CONFLICT (tenant_id, day, session_id, metric) DO UPDATE SET quantity = usage_daily.quantity + excluded.quantity",
            )
            .bind(daily.iter().map(|(k, _)| k.tenant_id.as_str()).collect::<Vec<_>>())
            .bind(daily.iter().map(|(k, _)| k.day.as_str()).collect::<Vec<_>>())
            .bind(daily.iter().map(|(k, _)| k.session_id.as_str()).collect::<Vec<_>>())
            .bind(daily.iter().map(|(k, _)| k.metric).collect::<Vec<_>>())
            .bind(daily.iter().map(|(_, n)| *n).collect::<Vec<_>>())
            .execute(&mut *c)
            .await?;
        }
        return Ok(());
    }
    for (k, used) in &w.set_monthly {
        on_conn!(c, c => sqlx::query("UPDATE usage_monthly SET used = $4 WHERE tenant_id = $1 AND month = $2 AND metric = $3")
            .bind(&k.tenant_id)
            .bind(&k.month)
            .bind(k.metric)
            .bind(*used)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    add_monthly(c, &w.add_monthly).await?;
    add_daily(c, &w.add_daily).await
}

#[instrument(skip_all)]
pub async fn set_gauge(c: &mut impl AsDbConn, tenant_id: &str, metric: &str, value: i64, now: i64) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "INSERT INTO usage_gauges (tenant_id, metric, value, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, metric) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
        .bind(tenant_id).bind(metric).bind(value).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// `(metric, value)` of every gauge the tenant has set.
#[instrument(skip_all)]
pub async fn gauges(c: &mut impl AsDbConn, tenant_id: &str) -> Result<Vec<(String, i64)>> {
    on_conn!(c, c => sqlx::query_as::<_, (String, i64)>(
        "SELECT metric, value FROM usage_gauges WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_all(c).await)
}
