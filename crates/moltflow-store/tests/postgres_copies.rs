//! The databases tests get ([`moltflow_store::testing::postgres`]) hold exactly what running the
//! migrations makes: copies of the template database and migrated schemas alike have the same
//! columns, constraints, indexes, functions, triggers and migration records as a schema migrated
//! here, and the append-only trigger refuses an update. Prints what each costs (`--nocapture`).

use std::time::{Duration, Instant};

use moltflow_store::Store;
use moltflow_store::testing::postgres::{Copies, TestDatabase, database_url};
use moltflow_store::testing::{skipped, skipped_part};
use sqlx::{Connection, Executor, PgConnection};

/// Every object of `schema` in the database `url` names, one line each, sorted, with the schema's
/// name taken out of the definitions (they name it when it is not on the search path).
async fn signature(url: &str, schema: &str) -> Vec<String> {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
         UNION ALL
         SELECT 'constraint ' || cl.relname || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
           FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid WHERE con.connamespace = $1::regnamespace
         UNION ALL
         SELECT 'index ' || ic.relname || ' ' || pg_get_indexdef(i.indexrelid)
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE ic.relnamespace = $1::regnamespace
         UNION ALL
         SELECT 'function ' || p.proname || ' ' || pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.pronamespace = $1::regnamespace
         UNION ALL
         SELECT 'trigger ' || t.tgname || ' ' || pg_get_triggerdef(t.oid)
           FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal
         UNION ALL
         SELECT 'relation ' || relname || ' ' || relkind::text FROM pg_class WHERE relnamespace = $1::regnamespace",
    )
    .bind(schema)
    .fetch_all(&mut conn)
    .await
    .expect("catalog");
    let migrations: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT 'migration ' || version || ' ' || encode(checksum, 'hex') || ' ' || success FROM \"{schema}\"._sqlx_migrations"
    )))
    .fetch_all(&mut conn)
    .await
    .expect("migrations");
    let mut all: Vec<String> =
        rows.into_iter().chain(migrations).map(|r| r.replace(&format!("{schema}."), "")).collect();
    all.sort();
    conn.close().await.expect("close");
    all
}

/// Consent records stay append-only in `url` (`schema` as the search path).
async fn appends_only(url: &str, schema: &str) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    conn.execute(sqlx::AssertSqlSafe(format!("SET search_path TO \"{schema}\""))).await.expect("search path");
    conn.execute(
        "INSERT INTO consent_records (id, tenant_id, consent_type, version, granted, created_at) \
         VALUES ('c1', 't1', 'ai', '1', TRUE, 0)",
    )
    .await
    .expect("insert");
    let refused = conn.execute("UPDATE consent_records SET granted = FALSE").await.expect_err("an update");
    assert!(refused.to_string().contains("append-only"), "{refused}");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn copies_of_the_template_hold_what_the_migrations_make() {
    let Some(base) = database_url() else { return skipped("PostgreSQL: MOLTFLOW_TEST_DATABASE_URL") };
    let migrated = format!("tv_{}", uuid::Uuid::new_v4().simple());
    let started = Instant::now();
    let store = Store::connect_with_schema(&base, 1, Some(&migrated)).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.close().await;
    let migrating = started.elapsed();
    let expected = signature(&base, &migrated).await;
    assert!(expected.iter().filter(|l| l.starts_with("trigger ")).count() == 1, "{expected:#?}");

    let mut admin = PgConnection::connect(&base).await.expect("connect");
    let may_create: bool =
        sqlx::query_scalar("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut admin)
            .await
            .expect("role");
    let mut kinds = vec![Copies::Schemas];
    if may_create {
        kinds.push(Copies::Databases);
    } else {
        skipped_part("the database copies", "a role that may create databases");
    }
    for copies in kinds {
        TestDatabase::new_as(&base, copies).await.expect("the template");
        let mut took = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let copy = TestDatabase::new_as(&base, copies).await.expect("a copy");
            took.push(started.elapsed());
            let schema = copy.schema().unwrap_or("public");
            assert_eq!(signature(copy.url(), schema).await, expected, "a copy made by {copies:?}");
            appends_only(copy.url(), schema).await;
        }
        took.sort();
        eprintln!("timing: a copy made by {copies:?}: median {:?} of {took:?}", took[1]);
    }
    eprintln!("timing: a schema migrated from scratch: {migrating:?}");
    admin.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{migrated}\" CASCADE"))).await.expect("drop");
    admin.close().await.expect("close");
    // The copies drop in the background: give them a moment before the process ends (a copy
    // left over is dropped by the next test process anyway).
    tokio::time::sleep(Duration::from_millis(200)).await;
}
