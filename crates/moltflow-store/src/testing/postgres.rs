//! A fresh, migrated PostgreSQL database for each test, at the cost of a copy instead of a run of
//! every migration (as crates.io's `crates_io_test_db` does).
//!
//! When the role may create databases, a template database `<base>_tmpl_<digest>` is migrated
//! once per migration set with the real migrator (keyed by a digest of the migrations and made
//! under an advisory lock, so that concurrent test binaries and reruns share it), and each test
//! gets `CREATE DATABASE … TEMPLATE …` of it (~60 ms against ~350 ms for migrating, measured on
//! the CI machine under load). Otherwise (or with `MOLTFLOW_TEST_DATABASE_CLONE=schema`) each
//! test gets a schema of the URL's database, migrated: replaying a template schema's DDL was
//! measured and costs what migrating does (creating the ~115 relations is the cost, not the
//! migrator), so there is no template schema.
//!
//! Copies are dropped when their [`TestDatabase`] is, on a thread of their own; those a process
//! left behind (it exited first, or crashed) are dropped by the next process that prepares the
//! template. A process holds an advisory lock (its lease) for as long as it lives, and its
//! copies carry the lease's number, so a copy is only ever dropped once its owner is gone.
//! `MOLTFLOW_TEST_KEEP_DATABASES=1` keeps a run's copies, to look into (until the next run).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection};

/// The advisory-lock class of the template locks (any constant; it only has to be ours).
const TEMPLATE_LOCKS: i32 = 0x6d66_7470; // "mftp"
/// The advisory-lock class of the process leases.
const LEASES: i32 = 0x6d66_6c73; // "mfls"

/// `MOLTFLOW_TEST_DATABASE_URL`, if set. On loopback, unless the URL says otherwise, without TLS:
/// it protects nothing there, and sqlx 0.9 sends its handshake without TCP_NODELAY (see
/// `nodelay.rs`), which made every connection a test opened cost ~90 ms (3 ms without).
pub fn database_url() -> Option<String> {
    let url = std::env::var("MOLTFLOW_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
    let host = url.split("://").nth(1).and_then(|rest| rest.split(['/', '?']).next()).unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    let loopback = ["127.0.0.1", "localhost", "[::1]"].iter().any(|h| host == *h || host.starts_with(&format!("{h}:")));
    if loopback && !url.contains("sslmode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        return Some(format!("{url}{sep}sslmode=disable"));
    }
    Some(url)
}

/// A copy of the migrated template, for one test: connect with [`TestDatabase::url`] and, when
/// it is a schema, [`TestDatabase::schema`] as the search path. Dropped (in the background) with
/// this value.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    schema: Option<String>,
    base_url: String,
}

/// How a test's copy of the template is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Copies {
    /// `CREATE DATABASE … TEMPLATE …` (the role may create databases).
    Databases,
    /// A new schema of the URL's database, migrated (no template: see the module's comment).
    Schemas,
}

impl TestDatabase {
    /// A fresh copy of the migrated template of `base_url`: a database when the role may create
    /// them (unless `MOLTFLOW_TEST_DATABASE_CLONE=schema`), else a schema.
    pub async fn new(base_url: &str) -> anyhow::Result<TestDatabase> {
        Self::new_as(base_url, copies_for(base_url).await?).await
    }

    /// A fresh copy made the way `copies` says.
    pub async fn new_as(base_url: &str, copies: Copies) -> anyhow::Result<TestDatabase> {
        let template = template(base_url, copies).await?;
        let name = format!("{}_{:08x}_{}", template.copy_prefix, lease(base_url)?, next_copy());
        Ok(match &template.kind {
            Kind::Database(source) => {
                let mut admin = PgConnection::connect(base_url).await.context("connect to the test database")?;
                admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{source}\""))).await?;
                admin.close().await?;
                TestDatabase { url: with_database(base_url, &name), schema: None, base_url: base_url.to_owned() }
            }
            Kind::Schema => {
                // Replaying the DDL costs what migrating does (measured: creating the ~115
                // relations is the cost, not the migrator), so a schema is migrated as is.
                let store = crate::Store::connect_with_schema(base_url, 1, Some(&name)).await?;
                store.migrate().await?;
                store.close().await;
                TestDatabase { url: base_url.to_owned(), schema: Some(name), base_url: base_url.to_owned() }
            }
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::env::var("MOLTFLOW_TEST_KEEP_DATABASES").is_ok() {
            eprintln!("note: kept {} (MOLTFLOW_TEST_KEEP_DATABASES)", self.schema.as_deref().unwrap_or(&self.url));
            return;
        }
        // Off the test's path (a dropped database costs PostgreSQL a checkpoint); a process that
        // exits first leaves it to the next one (see the module's comment).
        let drop_it = match &self.schema {
            Some(schema) => format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
            None => format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", database_of(&self.url)),
        };
        let base_url = self.base_url.clone();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&base_url).await {
                    let _ = admin.execute(sqlx::AssertSqlSafe(drop_it)).await;
                    let _ = admin.close().await;
                }
            });
        });
    }
}

#[derive(Clone, Debug)]
enum Kind {
    /// Copies of this template database.
    Database(String),
    /// Schemas migrated one by one (no template).
    Schema,
}

#[derive(Clone, Debug)]
struct Template {
    kind: Kind,
    /// What the copies' names start with (then the owner's lease and a counter).
    copy_prefix: String,
}

/// The migrations `Store::migrate` applies on PostgreSQL.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The digest of the PostgreSQL migrations (versions and checksums): a new set, a new template.
pub fn migrations_digest() -> String {
    let mut text = String::new();
    for m in MIGRATIONS.iter() {
        let checksum: String = m.checksum.iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("{}:{checksum};", m.version));
    }
    moltflow_core::secret::sha256_hex(&text)[..12].to_owned()
}

/// How copies of `base_url` are made by default (asked once per process).
async fn copies_for(base_url: &str) -> anyhow::Result<Copies> {
    static CHOSEN: tokio::sync::Mutex<BTreeMap<String, Copies>> = tokio::sync::Mutex::const_new(BTreeMap::new());
    let mut chosen = CHOSEN.lock().await;
    if let Some(copies) = chosen.get(base_url) {
        return Ok(*copies);
    }
    let mut admin = PgConnection::connect(base_url).await.context("connect to the test database")?;
    let may_create: bool =
        sqlx::query_scalar("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut admin)
            .await?;
    admin.close().await?;
    let schemas_only = std::env::var("MOLTFLOW_TEST_DATABASE_CLONE").is_ok_and(|v| v == "schema");
    let copies = if may_create && !schemas_only { Copies::Databases } else { Copies::Schemas };
    chosen.insert(base_url.to_owned(), copies);
    Ok(copies)
}

/// The template of `base_url` for `copies`, prepared once per process.
async fn template(base_url: &str, copies: Copies) -> anyhow::Result<Template> {
    type Prepared = BTreeMap<(String, Copies), Template>;
    static TEMPLATES: tokio::sync::Mutex<Prepared> = tokio::sync::Mutex::const_new(BTreeMap::new());
    let mut templates = TEMPLATES.lock().await;
    let key = (base_url.to_owned(), copies);
    if let Some(t) = templates.get(&key) {
        return Ok(t.clone());
    }
    let started = std::time::Instant::now();
    let prepared = prepare(base_url, copies).await?;
    if std::env::var("MOLTFLOW_TEST_TIMINGS").is_ok() {
        eprintln!("timing: PostgreSQL template {:?} ready in {:?}", prepared.kind, started.elapsed());
    }
    templates.insert(key, prepared.clone());
    Ok(prepared)
}

async fn prepare(base_url: &str, copies: Copies) -> anyhow::Result<Template> {
    let digest = migrations_digest();
    let mut admin = PgConnection::connect(base_url).await.context("connect to the test database")?;
    let lock = i32::from_str_radix(&digest[..7], 16)?;
    sqlx::query("SELECT pg_advisory_lock($1, $2)").bind(TEMPLATE_LOCKS).bind(lock).execute(&mut admin).await?;
    let prepared = if copies == Copies::Databases {
        let base = database_of(base_url);
        let name = format!("{}_tmpl_{digest}", truncated(&base, 63 - 18));
        let ready: Option<bool> =
            sqlx::query_scalar("SELECT datistemplate AND NOT datallowconn FROM pg_database WHERE datname = $1")
                .bind(&name)
                .fetch_optional(&mut admin)
                .await?;
        if ready != Some(true) {
            // Absent, or left half-made by a process that died while migrating it.
            admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).await?;
            admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await?;
            let store = crate::Store::connect(&with_database(base_url, &name), 1).await?;
            store.migrate().await?;
            store.close().await;
            // No connection may open it again: a template must have none while it is copied.
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
                )))
                .await?;
        }
        Template { kind: Kind::Database(name), copy_prefix: format!("{}_t", truncated(&base, 63 - 24)) }
    } else {
        Template { kind: Kind::Schema, copy_prefix: "tc".to_owned() }
    };
    sqlx::query("SELECT pg_advisory_unlock($1, $2)").bind(TEMPLATE_LOCKS).bind(lock).execute(&mut admin).await?;
    drop_orphans(&mut admin, &prepared).await?;
    admin.close().await?;
    Ok(prepared)
}

/// Drops the copies whose owner's lease is no longer held (the owner exited before its drops).
async fn drop_orphans(admin: &mut PgConnection, template: &Template) -> anyhow::Result<()> {
    let like = format!("{}\\_%\\_%", template.copy_prefix.replace('_', "\\_"));
    let names: Vec<String> = match template.kind {
        Kind::Database(_) => sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1"),
        Kind::Schema => sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1"),
    }
    .bind(&like)
    .fetch_all(&mut *admin)
    .await?;
    let held: Vec<i64> = sqlx::query_scalar(
        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int::oid AND objsubid = 2 AND granted",
    )
    .bind(LEASES)
    .fetch_all(&mut *admin)
    .await?;
    for name in names {
        let Some(owner) = name.strip_prefix(&format!("{}_", template.copy_prefix)) else { continue };
        let Some(Ok(owner)) = owner.split('_').next().map(|hex| u32::from_str_radix(hex, 16)) else { continue };
        if held.contains(&i64::from(owner)) {
            continue;
        }
        let sql = match template.kind {
            Kind::Database(_) => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            Kind::Schema => format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"),
        };
        admin.execute(sqlx::AssertSqlSafe(sql)).await?;
    }
    Ok(())
}

/// This process's lease on `base_url`'s server: an advisory lock held by a connection of its own
/// (on a thread of its own, whatever runtime the tests use) until the process ends.
fn lease(base_url: &str) -> anyhow::Result<u32> {
    static LEASE: OnceLock<Result<u32, String>> = OnceLock::new();
    let base_url = base_url.to_owned();
    LEASE
        .get_or_init(move || {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async move {
                    let taken = async {
                        let mut conn = PgConnection::connect(&base_url).await?;
                        loop {
                            let key = rand_u32() & 0x7fff_ffff;
                            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                                .bind(LEASES)
                                .bind(key as i32)
                                .fetch_one(&mut conn)
                                .await?;
                            if got {
                                return Ok::<_, sqlx::Error>((conn, key));
                            }
                        }
                    };
                    match taken.await {
                        Ok((conn, key)) => {
                            let _ = tx.send(Ok(key));
                            // Held until the process exits (its socket closes, the lock goes).
                            std::future::pending::<()>().await;
                            drop(conn);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                });
            });
            rx.recv().unwrap_or_else(|_| Err("the lease thread died".into()))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("the test process's lease: {e}"))
}

fn rand_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn next_copy() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn truncated(s: &str, at: usize) -> &str {
    &s[..s.len().min(at)]
}

/// The database named in a `postgres://…/name?…` URL.
fn database_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.split_once('/').map_or("", |(_, path)| path);
    path.split('?').next().unwrap_or("").to_owned()
}

/// `url` reaching its server at `address` (`host:port`) instead: through a proxy, say.
pub fn with_address(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, path) = rest.split_once('/').map_or((rest, String::new()), |(a, p)| (a, format!("/{p}")));
    let user = authority.rsplit_once('@').map(|(user, _)| format!("{user}@")).unwrap_or_default();
    format!("{scheme}://{user}{address}{path}")
}

/// `url` naming the database `name` instead (the query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}
