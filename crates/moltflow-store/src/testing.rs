//! Test support: raw statements for assertions that no API exposes ("nothing was written") and
//! for moving rows back in time; fresh PostgreSQL databases ([`postgres`]); and the one way a test
//! says it was skipped ([`skipped`]). Compiled only with the `testing` feature.

use crate::{Result, Store, Tx, on_conn};

pub mod postgres;

/// What a test prints when its environment lacks what it needs (`needs`: "PostgreSQL
/// (MOLTFLOW_TEST_DATABASE_URL)", …) and it returns without testing anything: one line,
/// `note: <test> skipped (needs …)`, so that `cargo test -- --nocapture` shows every skip. The
/// test is named after the thread libtest runs it on.
pub fn skipped(needs: &str) {
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or("a test");
    eprintln!("note: {test} skipped (needs {needs})");
}

/// [`skipped`] for a part of a test (`part`: "the second node's token") that its environment
/// cannot run, the rest of the test running: `note: <test>: <part> skipped (needs …)`.
pub fn skipped_part(part: &str, needs: &str) {
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or("a test");
    eprintln!("note: {test}: {part} skipped (needs {needs})");
}

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

impl Store {
    /// [`Store::scalar_i64`] with text parameters bound to `$1`, `$2`, … (never spliced into the SQL).
    pub async fn scalar_i64_with(&self, sql: &str, params: &[&str]) -> Result<i64> {
        let mut conn = self.conn().await?;
        on_conn!(&mut conn, c => {
            let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()));
            for p in params {
                query = query.bind(*p);
            }
            query.fetch_one(c).await
        })
    }

    /// [`Store::execute_raw`] with text parameters bound to `$1`, `$2`, …; returns the rows it touched.
    pub async fn execute_with(&self, sql: &str, params: &[&str]) -> Result<u64> {
        let mut conn = self.conn().await?;
        on_conn!(&mut conn, c => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for p in params {
                query = query.bind(*p);
            }
            query.execute(c).await.map(|r| r.rows_affected())
        })
    }
}
