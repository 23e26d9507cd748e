//! Test support: raw statements for assertions that no API exposes ("nothing was written") and
//! for moving rows back in time. Compiled only with the `testing` feature.

use crate::{Result, Store, Tx, on_conn};

impl Store {
    /// `SELECT COUNT(*) …` or any query returning one integer.
    pub async fn scalar_i64(&self, sql: &str) -> Result<i64> {
        let mut conn = self.conn().await?;
        on_conn!(&mut conn, c => sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(c).await)
    }

    /// Runs `sql` on every connection the pool lends (a per-connection `PRAGMA`): borrows as many
    /// connections as the pool may open, all at once so that it opens them all, runs the
    /// statement on each and gives them back. Connections opened later do not get it.
    pub async fn on_every_connection(&self, sql: &str) -> Result<()> {
        let mut conns = Vec::new();
        for _ in 0..self.max_connections() {
            conns.push(self.conn().await?);
        }
        for conn in &mut conns {
            on_conn!(conn, c => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(c).await.map(|_| ()))?;
        }
        Ok(())
    }

    /// Runs a statement; returns the rows it touched.
    pub async fn execute_raw(&self, sql: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        on_conn!(&mut conn, c => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(c).await.map(|r| r.rows_affected()))
    }
}

impl Tx {
    /// Runs a statement inside this transaction (a test holding a lock, say).
    pub async fn execute_raw(&mut self, sql: &str) -> Result<u64> {
        on_conn!(self, c => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(c).await.map(|r| r.rows_affected()))
    }
}
