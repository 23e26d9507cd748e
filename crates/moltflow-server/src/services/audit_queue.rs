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
