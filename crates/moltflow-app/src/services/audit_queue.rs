//! Audit entries written off the request path: a request queues the row and answers; one writer
//! task writes whatever waits in one transaction. For records of a refusal that changed nothing
//! (`login.failed`), so that the request does the same work whether or not there is a row to
//! write: a failed login for a known email and one for an unknown email queue a job alike, and
//! neither waits for the database (API.md §3, "in the same time").
//!
//! The queue is bounded: under a flood, requests wait for room (both kinds alike) instead of
//! growing memory. The writer writes what is left when the service stops.

use std::sync::Mutex;
use std::time::Duration;

use moltflow_store::Store;
use moltflow_store::audit::{AuditRow, insert_audit};
use tokio::sync::{mpsc, oneshot, watch};

/// Rows waiting before requests wait for room.
const CAPACITY: usize = 10_000;
/// Rows written in one transaction at most.
const BATCH: usize = 500;
const ATTEMPTS: u32 = 3;

/// What the writer receives.
pub enum Job {
    /// A row to write, or (`write: false`) the same work for a case that has none.
    Row { row: Box<AuditRow>, write: bool },
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

pub struct AuditQueue {
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

impl Default for AuditQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(CAPACITY);
        AuditQueue { tx, rx: Mutex::new(Some(rx)) }
    }
}

impl AuditQueue {
    /// Queues `row`; with `write: false` it is dropped by the writer, after the same work here.
    pub async fn push(&self, row: AuditRow, write: bool) {
        if self.tx.send(Job::Row { row: Box::new(row), write }).await.is_err() {
            tracing::warn!("audit writer has stopped; an entry was not written");
        }
    }

    /// Waits until every entry queued before this call is written (tests, and shutdown paths
    /// that want the log complete).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// The receiving end, for the one writer task.
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Job>> {
        self.rx.lock().ok()?.take()
    }
}

/// Writes queued rows until `stop` fires (or every sender is gone), then writes what is left.
pub async fn run(store: Store, mut rx: mpsc::Receiver<Job>, mut stop: watch::Receiver<bool>) {
    loop {
        let (first, mut stopping) = tokio::select! {
            biased;
            job = rx.recv() => (job, false),
            _ = stop.changed() => (None, true),
        };
        if first.is_none() {
            stopping = true;
        }
        let mut rows = Vec::new();
        let mut waiters = Vec::new();
        let mut next = first;
        loop {
            match next.take() {
                Some(Job::Row { row, write: true }) => rows.push(*row),
                Some(Job::Row { write: false, .. }) => {}
                Some(Job::Flush(done)) => waiters.push(done),
                None => {}
            }
            if rows.len() >= BATCH && !stopping {
                break;
            }
            match rx.try_recv() {
                Ok(job) => next = Some(job),
                Err(_) => break,
            }
        }
        write(&store, &rows).await;
        for done in waiters {
            let _ = done.send(());
        }
        if stopping {
            return;
        }
    }
}

async fn write(store: &Store, rows: &[AuditRow]) {
    if rows.is_empty() {
        return;
    }
    for attempt in 1..=ATTEMPTS {
        let written = async {
            let mut tx = store.begin().await?;
            for row in rows {
                insert_audit(&mut tx, row).await?;
            }
            tx.commit().await
        };
        match written.await {
            Ok(()) => return,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, entries = rows.len(), attempt, "writing audit entries failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => tracing::error!(error = %e, entries = rows.len(), "writing audit entries failed; dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use moltflow_store::audit::list_audit;

    use super::*;

    fn row(tenant_id: &str, n: usize) -> AuditRow {
        AuditRow {
            id: moltflow_core::ids::new_id(),
            tenant_id: tenant_id.to_owned(),
            at: n as i64,
            actor_type: "anonymous".to_owned(),
            actor_id: None,
            action: "login.failed".to_owned(),
            target: None,
            ip: None,
            user_agent: None,
            details: "{}".to_owned(),
        }
    }

    #[tokio::test]
    async fn the_writer_writes_what_is_queued_when_the_service_stops_and_drops_placeholders() {
        let dir = std::env::temp_dir().join(format!("moltflow-audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.join("t.db").display()), 2).await.unwrap();
        store.migrate().await.unwrap();
        let queue = AuditQueue::default();
        let rx = queue.take_receiver().unwrap();
        assert!(queue.take_receiver().is_none(), "one writer");
        for n in 0..3 {
            queue.push(row("t1", n), true).await;
        }
        queue.push(row("t2", 9), false).await;
        // Stopped before it ever ran: everything queued is written all the same.
        let (stop, stopped) = watch::channel(false);
        stop.send(true).unwrap();
        run(store.clone(), rx, stopped).await;
        let mut conn = store.conn().await.unwrap();
        assert_eq!(list_audit(&mut conn, "t1", None, None, 10).await.unwrap().len(), 3);
        assert!(list_audit(&mut conn, "t2", None, None, 10).await.unwrap().is_empty());
        drop(conn);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
