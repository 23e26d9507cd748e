//! The pool over either backend, its connections and transactions, and migrations.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

/// Migrations of `migrator` not recorded as applied (counted before running them; a concurrent
/// migrator may apply some in between, which only makes the count an upper bound).
async fn pending_migrations(migrator: &Migrator, conn: &mut impl Migrate) -> anyhow::Result<usize> {
    conn.ensure_migrations_table(&migrator.table_name).await?;
    let applied: HashSet<i64> =
        conn.list_applied_migrations(&migrator.table_name).await?.into_iter().map(|m| m.version).collect();
    Ok(migrator.iter().filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version)).count())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database: cheap to clone, shared by every request and worker.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// Where nodes tell each other what changed (PostgreSQL only).
    signals: Option<crate::signals::Signals>,
}

/// How long a PostgreSQL connection may sit in the pool before it is pinged when borrowed.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A connection borrowed from the pool for a few statements outside a transaction.
pub enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// A write transaction: on SQLite it starts with `BEGIN IMMEDIATE` so that two writers queue
/// instead of failing at commit time.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A connection of either backend, as the query bodies of [`on_conn!`] receive it.
pub enum DbConn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

pub trait AsDbConn: Send {
    fn db_conn(&mut self) -> DbConn<'_>;
}

impl AsDbConn for Conn {
    fn db_conn(&mut self) -> DbConn<'_> {
        match self {
            Conn::Sqlite(c) => DbConn::Sqlite(c),
            Conn::Postgres(c) => DbConn::Postgres(c),
        }
    }
}

impl AsDbConn for Tx {
    fn db_conn(&mut self) -> DbConn<'_> {
        match self {
            Tx::Sqlite(t) => DbConn::Sqlite(t),
            Tx::Postgres(t) => DbConn::Postgres(t),
        }
    }
}

/// Runs `$body` with `$c` bound to the backend's `&mut Connection`.
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $crate::AsDbConn::db_conn($conn) {
            $crate::DbConn::Sqlite($c) => $crate::StoreError::lift($body),
            $crate::DbConn::Postgres($c) => $crate::StoreError::lift($body),
        }
    };
}

impl Tx {
    pub async fn commit(self) -> crate::Result<()> {
        match self {
            Tx::Sqlite(t) => Ok(t.commit().await?),
            Tx::Postgres(t) => Ok(t.commit().await?),
        }
    }
}

/// How the pool behaves when the database is slow or gone.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// The longest a request waits for a connection, opening one included. While the database
    /// is unreachable every request waits this long and then fails, so it is short: a client
    /// gets `503` quickly instead of hanging, and retries.
    pub acquire_timeout: Duration,
}

impl PoolSettings {
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

    pub fn new(max_connections: u32) -> PoolSettings {
        PoolSettings { max_connections, acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT }
    }
}

impl Store {
    /// Opens `sqlite://path` (created if missing, WAL) or `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        Self::connect_with(url, PoolSettings::new(max_connections), None).await
    }

    /// As [`Store::connect_with`] with the default acquire timeout.
    pub async fn connect_with_schema(url: &str, max_connections: u32, schema: Option<&str>) -> anyhow::Result<Store> {
        Self::connect_with(url, PoolSettings::new(max_connections), schema).await
    }

    /// Opens the database with `settings`; on PostgreSQL `schema` (when given) is created and
    /// made the search path of every connection, which gives each test a database of its own.
    ///
    /// A PostgreSQL connection idle for [`PING_AFTER_IDLE`] or longer is checked (a ping) before
    /// it is lent out, so connections broken by a database restart are replaced instead of
    /// failing a request, and the pool heals on its own once the database is back. One used
    /// moments ago is lent without a ping: sqlx pings every connection as it comes back to the
    /// pool (and closes it if that fails), so a busy pool holds no connection that failed its
    /// last use, and a ping on every borrow cost each request a round trip.
    pub async fn connect_with(url: &str, settings: PoolSettings, schema: Option<&str>) -> anyhow::Result<Store> {
        let max_connections = settings.max_connections;
        let mut signals = None;
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .min_connections(1)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let mut options = PgConnectOptions::from_str(url)?;
            if let Some(schema) = schema {
                anyhow::ensure!(
                    !schema.is_empty() && schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "schema names are letters, digits and underscores"
                );
                let admin = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                options = options.options([("search_path", schema)]);
            }
            let tcp_port = (!options.get_host().starts_with('/')).then(|| options.get_port());
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(settings.acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_AFTER_IDLE {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .after_connect(move |_, _| {
                    Box::pin(async move {
                        if let Some(port) = tcp_port {
                            crate::nodelay::on_sockets_to(port);
                        }
                        Ok(())
                    })
                })
                .connect_with(options.clone())
                .await?;
            signals = Some(crate::signals::Signals::new(&pool, options).await?);
            Pool::Postgres(pool)
        } else {
            anyhow::bail!("unsupported database URL scheme (expected sqlite:// or postgres://)");
        };
        Ok(Store { pool, signals })
    }

    /// The cross-node signals of this database (`None` on SQLite: one node, nothing to tell).
    pub fn signals(&self) -> Option<&crate::signals::Signals> {
        self.signals.as_ref()
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the migrations of the backend that are not applied yet and answers how many that
    /// was (`0`: the database was already up to date), so that `moltflow migrate` can say so.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
        static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
        Ok(match &self.pool {
            Pool::Sqlite(p) => {
                let pending = pending_migrations(&SQLITE, &mut *p.acquire().await?).await?;
                SQLITE.run(p).await?;
                pending
            }
            Pool::Postgres(p) => {
                let pending = pending_migrations(&POSTGRES, &mut *p.acquire().await?).await?;
                POSTGRES.run(p).await?;
                pending
            }
        })
    }

    pub async fn conn(&self) -> crate::Result<Conn> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Conn::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => Conn::Postgres(p.acquire().await?),
        })
    }

    pub async fn begin(&self) -> crate::Result<Tx> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// The pool's size, for tests that must hold every connection at once.
    pub fn max_connections(&self) -> u32 {
        match &self.pool {
            Pool::Sqlite(p) => p.options().get_max_connections(),
            Pool::Postgres(p) => p.options().get_max_connections(),
        }
    }

    /// Whether the database answers (`/readyz`): a statement that touches no table.
    pub async fn ping(&self) -> crate::Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
            Pool::Postgres(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}
