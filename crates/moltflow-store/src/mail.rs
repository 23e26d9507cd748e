//! The mail outbox: rows written in the transaction of the change that causes a mail, claimed and
//! delivered by the outbox worker.

use sqlx::FromRow;
use tracing::instrument;

use crate::{AsDbConn, Result, on_conn};

#[derive(Clone, Debug, FromRow)]
pub struct OutboxRow {
    pub id: String,
    pub to_addr: String,
    pub kind: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub locked_until: Option<i64>,
}

macro_rules! outbox_columns {
    () => {
        "id, to_addr, kind, subject, text_body, html_body, created_at, next_attempt_at, attempts, last_error, \
         sent_at, failed_at, locked_until"
    };
}

#[instrument(skip_all)]
pub async fn insert_mail(c: &mut impl AsDbConn, m: &OutboxRow) -> Result<()> {
    const SQL: &str = concat!(
        "INSERT INTO mail_outbox (",
        outbox_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    );
    on_conn!(c, c => sqlx::query(SQL)
        .bind(&m.id).bind(&m.to_addr).bind(&m.kind).bind(&m.subject).bind(&m.text_body).bind(&m.html_body)
        .bind(m.created_at).bind(m.next_attempt_at).bind(m.attempts).bind(&m.last_error).bind(m.sent_at)
        .bind(m.failed_at).bind(m.locked_until)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Mails queued for `to_addr` since `since` (ms), sent or not: what the hourly cap counts.
#[instrument(skip_all)]
pub async fn count_mail_since(c: &mut impl AsDbConn, to_addr: &str, since: i64, except_kind: &str) -> Result<i64> {
    on_conn!(c, c => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM mail_outbox WHERE to_addr = $1 AND created_at >= $2 AND kind <> $3")
        .bind(to_addr).bind(since).bind(except_kind).fetch_one(c).await)
}

/// Mails of `kind` queued for `to_addr` since `since` (ms), sent or not: how many, and the oldest
/// one's time (for a cap's `Retry-After`).
#[instrument(skip_all)]
pub async fn count_mail_of_kind_since(
    c: &mut impl AsDbConn,
    to_addr: &str,
    kind: &str,
    since: i64,
) -> Result<(i64, Option<i64>)> {
    on_conn!(c, c => sqlx::query_as::<_, (i64, Option<i64>)>(
        "SELECT COUNT(*), MIN(created_at) FROM mail_outbox WHERE to_addr = $1 AND kind = $2 AND created_at >= $3")
        .bind(to_addr).bind(kind).bind(since).fetch_one(c).await)
}

/// Claims up to `limit` due mails until `lock_until`: unsent, not given up, due, and not claimed
/// by a live worker. The outer condition is evaluated again on each row as it is updated, so two
/// nodes claiming at once never take the same row.
#[instrument(skip_all)]
pub async fn claim_due_mail(c: &mut impl AsDbConn, now: i64, lock_until: i64, limit: i64) -> Result<Vec<OutboxRow>> {
    const SQL: &str = concat!(
        "UPDATE mail_outbox SET locked_until = $2 WHERE id IN (",
        "SELECT id FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 ",
        "AND (locked_until IS NULL OR locked_until < $1) ORDER BY next_attempt_at LIMIT $3) ",
        "AND sent_at IS NULL AND (locked_until IS NULL OR locked_until < $1) RETURNING ",
        outbox_columns!()
    );
    on_conn!(c, c => sqlx::query_as::<_, OutboxRow>(SQL).bind(now).bind(lock_until).bind(limit).fetch_all(c).await)
}

/// Marks a mail delivered and wipes its bodies: they carry a one-time link.
#[instrument(skip_all)]
pub async fn mark_mail_sent(c: &mut impl AsDbConn, id: &str, at: i64, attempts: i64) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "UPDATE mail_outbox SET sent_at = $2, attempts = $3, text_body = '', html_body = '', last_error = NULL, \
         locked_until = NULL WHERE id = $1")
        .bind(id).bind(at).bind(attempts).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Records a failed attempt: retried at `next_attempt_at`, or never (`failed_at`) when the failure
/// is permanent; a given-up mail's bodies are wiped like a sent one's.
#[instrument(skip_all)]
pub async fn mark_mail_failed(
    c: &mut impl AsDbConn,
    id: &str,
    attempts: i64,
    next_attempt_at: i64,
    error: &str,
    failed_at: Option<i64>,
) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "UPDATE mail_outbox SET attempts = $2, next_attempt_at = $3, last_error = $4, failed_at = $5, \
         locked_until = NULL, \
         text_body = CASE WHEN $5 IS NULL THEN text_body ELSE '' END, \
         html_body = CASE WHEN $5 IS NULL THEN html_body ELSE '' END WHERE id = $1")
        .bind(id).bind(attempts).bind(next_attempt_at).bind(error).bind(failed_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Gives claimed rows back (a worker shutting down before it sent them).
#[instrument(skip_all)]
pub async fn release_mail(c: &mut impl AsDbConn, id: &str) -> Result<()> {
    on_conn!(c, c => sqlx::query(
        "UPDATE mail_outbox SET locked_until = NULL WHERE id = $1 AND sent_at IS NULL")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Erases every mail to an address (account deletion).
#[instrument(skip_all)]
pub async fn delete_mail_to(c: &mut impl AsDbConn, to_addr: &str) -> Result<u64> {
    on_conn!(c, c => sqlx::query("DELETE FROM mail_outbox WHERE to_addr = $1")
        .bind(to_addr).execute(c).await.map(|r| r.rows_affected()))
}
