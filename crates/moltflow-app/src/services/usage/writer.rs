//! The usage writer: group commit for the hottest write path.
//!
//! Requests do not open transactions of their own. They enqueue a job and wait; one task takes
//! every job waiting (up to [`MAX_JOBS`]), applies them in order inside ONE transaction, commits,
//! and only then answers each request. So an answered request is on disk (write-ahead: nothing is
//! acknowledged from memory), while a commit's fsync is shared by the whole batch.
//!
//! Quota decisions are made inside that transaction against the counters it has locked, never
//! from a cached count: a batch with consumes first locks every monthly counter it may change (in
//! key order, one statement), reads their totals, then decides each job in arrival order in
//! memory and writes the new totals back before committing. On SQLite the writer holds the write
//! lock; on PostgreSQL the row locks make another node's batch wait for this commit and read the
//! new totals. Either way the sum of grants never passes the limit, however many nodes and
//! requests race, and a batch costs a handful of statements whatever its size (one round trip
//! per consume kept PostgreSQL at a third of SQLite's pace).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use moltflow_core::period::{Day, Month};
use moltflow_core::plan::PlanCatalogue;
use moltflow_core::usage::Metric;
use moltflow_store::usage::{
    ConsumptionRow, DailyKey, EventRow, MonthlyKey, find_consumptions, insert_consumptions, insert_events, write_sums,
};
use moltflow_store::{Backend, Store, Tx};

use super::cache::DailyCache;
use super::counters::{Counters, decide};
use crate::services::failure::store_unavailable;
use tokio::sync::{mpsc, oneshot};

/// Jobs applied in one transaction at most: enough to share one commit among every waiting
/// request at 64 concurrent clients, small enough to keep a batch's latency short.
const MAX_JOBS: usize = 256;
/// Requests that may wait for the writer before callers get `503`.
const QUEUE: usize = 16_384;

/// Events of one request, validated.
pub struct EventsJob {
    pub tenant_id: String,
    pub events: Vec<EventRow>,
    /// The use case's reading of the service clock (tests move it).
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsOutcome {
    pub accepted: u64,
    pub duplicates: u64,
}

/// One consume, validated.
pub struct ConsumeJob {
    pub tenant_id: String,
    pub metric: Metric,
    pub quantity: i64,
    pub session_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// The use case's reading of the service clock: the month it counts in, and the one its
    /// answer's `resets_at` names.
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumeOutcome {
    Granted {
        used: i64,
        limit: Option<i64>,
    },
    /// The key was granted before: the stored answer, with what it was for.
    Replayed {
        metric: String,
        quantity: i64,
        used: i64,
        limit: Option<i64>,
    },
    Denied {
        used: i64,
        limit: i64,
        month: Month,
    },
}

pub(super) enum Job {
    Events(EventsJob, oneshot::Sender<Result<EventsOutcome, WriterError>>),
    Consume(ConsumeJob, oneshot::Sender<Result<ConsumeOutcome, WriterError>>),
}

impl Job {
    fn now(&self) -> i64 {
        match self {
            Job::Events(job, _) => job.now,
            Job::Consume(job, _) => job.now,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the usage writer is not running")]
    Stopped,
    #[error("the usage writer queue is full")]
    Busy,
    /// The database is unreachable or cannot write: nothing of the job was committed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Db(String),
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct UsageWriter {
    tx: mpsc::Sender<Job>,
    cache: Arc<DailyCache>,
}

impl UsageWriter {
    /// Starts the writer task on the current runtime. It stops once every handle is dropped,
    /// after applying what was queued.
    pub fn spawn(store: Store, plans: Arc<PlanCatalogue>) -> UsageWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        // Exact only where this writer is the only one: SQLite (see `cache`).
        let cache = Arc::new(DailyCache::new(store.backend() == Backend::Sqlite));
        tokio::spawn(run(store, plans, cache.clone(), rx));
        UsageWriter { tx, cache }
    }

    /// The `/usage/daily` cache this writer keeps exact.
    pub fn daily_cache(&self) -> &DailyCache {
        &self.cache
    }

    pub async fn events(&self, job: EventsJob) -> Result<EventsOutcome, WriterError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Events(job, reply))?;
        answer.await.map_err(|_| WriterError::Stopped)?
    }

    pub async fn consume(&self, job: ConsumeJob) -> Result<ConsumeOutcome, WriterError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Consume(job, reply))?;
        answer.await.map_err(|_| WriterError::Stopped)?
    }

    fn enqueue(&self, job: Job) -> Result<(), WriterError> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriterError::Busy,
            mpsc::error::TrySendError::Closed(_) => WriterError::Stopped,
        })
    }
}

async fn run(store: Store, plans: Arc<PlanCatalogue>, cache: Arc<DailyCache>, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_JOBS);
    while rx.recv_many(&mut batch, MAX_JOBS).await > 0 {
        metrics::histogram!("usage_writer_batch_jobs").record(batch.len() as f64);
        let jobs: Vec<Job> = std::mem::take(&mut batch);
        match apply(&store, &plans, &jobs).await {
            Ok((outcomes, touched)) => {
                // Committed: forget cached reports of what changed before anyone is answered.
                cache.invalidate(touched.iter().map(|(t, m)| (t.as_str(), m.as_str())));
                answer(jobs, outcomes)
            }
            Err(err) if store_unavailable(&err) => {
                // The database is gone or cannot write: every job would fail the same way, and
                // retrying each alone would hold the queue for one acquire timeout per job. The
                // whole batch is refused at once (not committed, so nothing is acknowledged).
                tracing::error!(error = %err, jobs = jobs.len(), "usage batch not written: database unavailable; answering 503");
                for job in jobs {
                    fail(job, WriterError::Unavailable(err.to_string()));
                }
            }
            Err(err) => {
                // A batch fails as a whole (a deadlock between nodes, one job the database
                // refuses): retry each job alone so that one cannot fail the others. Such an
                // error comes before or at a commit the database refused, so nothing of the
                // batch is on disk and a job cannot count twice.
                tracing::warn!(error = %err, jobs = jobs.len(), "usage batch failed; applying its jobs one by one");
                for job in jobs {
                    let single = [job];
                    match apply(&store, &plans, &single).await {
                        Ok((outcomes, touched)) => {
                            cache.invalidate(touched.iter().map(|(t, m)| (t.as_str(), m.as_str())));
                            answer(single.into(), outcomes)
                        }
                        Err(err) => {
                            tracing::error!(error = %err, "usage job failed");
                            let [job] = single;
                            let failure = if store_unavailable(&err) {
                                WriterError::Unavailable(err.to_string())
                            } else {
                                WriterError::Db(err.to_string())
                            };
                            fail(job, failure);
                        }
                    }
                }
            }
        }
    }
}

enum Outcome {
    Events(EventsOutcome),
    Consume(ConsumeOutcome),
}

fn answer(jobs: Vec<Job>, outcomes: Vec<Outcome>) {
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        // A requester that went away (client disconnected) no longer listens; its work stands.
        match (job, outcome) {
            (Job::Events(_, reply), Outcome::Events(o)) => drop(reply.send(Ok(o))),
            (Job::Consume(_, reply), Outcome::Consume(o)) => drop(reply.send(Ok(o))),
            (job, _) => fail(job, WriterError::Db("outcome mismatch".into())),
        }
    }
}

fn fail(job: Job, err: WriterError) {
    match job {
        Job::Events(_, reply) => drop(reply.send(Err(err))),
        Job::Consume(_, reply) => drop(reply.send(Err(err))),
    }
}

/// `(tenant_id, "YYYY-MM")` of every daily sum a commit changed.
type Touched = BTreeSet<(String, String)>;

/// Applies `jobs` in one transaction; outcomes in job order, valid only once committed, and the
/// months whose daily sums changed.
async fn apply(store: &Store, plans: &PlanCatalogue, jobs: &[Job]) -> moltflow_store::Result<(Vec<Outcome>, Touched)> {
    // A batch counts in the month its first job read: jobs of one batch arrived within
    // milliseconds, and a job at a month's edge is counted in the month its caller was told.
    let now = jobs.first().map_or(0, Job::now);
    let month = Month::of_ms(now);
    let mut tx = store.begin().await?;
    let mut counters = Counters::lock(&mut tx, jobs, &month).await?;
    let limits = counters.limits(plans);
    let mut stored = stored_consumptions(&mut tx, jobs).await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    // Daily sums of the whole batch (events and grants), written once at the end: nothing reads
    // them inside the batch.
    let mut daily: BTreeMap<DailyKey, i64> = BTreeMap::new();
    // Grants recorded under an idempotency key, inserted together after the decisions.
    let mut keyed: Vec<(usize, ConsumptionRow)> = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        outcomes.push(match job {
            Job::Events(job, _) => Outcome::Events(apply_events(&mut tx, job, &mut daily, &mut counters).await?),
            Job::Consume(job, _) => {
                let stored_key = job.idempotency_key.as_ref().map(|k| (job.tenant_id.clone(), k.clone()));
                if let Some(row) = stored_key.as_ref().and_then(|k| stored.get(k)) {
                    Outcome::Consume(replayed(row.clone()))
                } else {
                    let l = limits.get(&job.tenant_id).cloned().unwrap_or_default();
                    let outcome = decide(&mut counters, job, &l, &month);
                    if let ConsumeOutcome::Granted { used, limit } = &outcome {
                        *daily.entry(grant_day(job, now)).or_default() += job.quantity;
                        if let Some((tenant_id, key)) = stored_key {
                            let row = ConsumptionRow {
                                tenant_id,
                                idempotency_key: key,
                                metric: job.metric.as_str().to_owned(),
                                quantity: job.quantity,
                                used: *used,
                                limit_value: *limit,
                                at: now,
                            };
                            // A later job of this batch with the same key replays this grant.
                            stored.insert((row.tenant_id.clone(), row.idempotency_key.clone()), row.clone());
                            keyed.push((index, row));
                        }
                    }
                    Outcome::Consume(outcome)
                }
            }
        });
    }
    let (indexes, rows): (Vec<usize>, Vec<ConsumptionRow>) = keyed.into_iter().unzip();
    let inserted = insert_consumptions(&mut tx, &rows).await?;
    let inserted: HashSet<(&str, &str)> = inserted.iter().map(|(t, k)| (t.as_str(), k.as_str())).collect();
    let taken: Vec<(usize, &ConsumptionRow)> = indexes
        .into_iter()
        .zip(&rows)
        .filter(|(_, r)| !inserted.contains(&(r.tenant_id.as_str(), r.idempotency_key.as_str())))
        .collect();
    if !taken.is_empty() {
        // Another node granted the same key meanwhile: count it once, and answer its grant.
        let pairs: Vec<(&str, &str)> =
            taken.iter().map(|(_, r)| (r.tenant_id.as_str(), r.idempotency_key.as_str())).collect();
        let theirs = find_consumptions(&mut tx, &pairs).await?;
        for (index, _) in &taken {
            if let Job::Consume(job, _) = &jobs[*index] {
                let key = MonthlyKey {
                    tenant_id: job.tenant_id.clone(),
                    month: month.to_string(),
                    metric: job.metric.as_str(),
                };
                counters.add(&key, -job.quantity);
                *daily.entry(grant_day(job, now)).or_default() -= job.quantity;
            }
        }
        // The grant and any later job of the batch that replayed it answer the other node's.
        for (index, job) in jobs.iter().enumerate() {
            if let Job::Consume(job, _) = job
                && let Some(key) = &job.idempotency_key
                && let Some(row) = theirs.iter().find(|r| r.tenant_id == job.tenant_id && &r.idempotency_key == key)
            {
                outcomes[index] = Outcome::Consume(replayed(row.clone()));
            }
        }
    }
    daily.retain(|_, n| *n != 0);
    let touched: Touched =
        daily.keys().map(|k| (k.tenant_id.clone(), k.day.get(..7).unwrap_or(&k.day).to_owned())).collect();
    write_sums(&mut tx, &counters.into_writes(daily.into_iter().collect())).await?;
    tx.commit().await?;
    Ok((outcomes, touched))
}

/// The daily sum a grant counts in: today, its session.
fn grant_day(job: &ConsumeJob, now: i64) -> DailyKey {
    DailyKey {
        tenant_id: job.tenant_id.clone(),
        day: Day::of_ms(now).to_string(),
        session_id: job.session_id.clone().unwrap_or_default(),
        metric: job.metric.as_str(),
    }
}

/// The consumes stored before this batch under the idempotency keys it carries. Read after the
/// counters are locked, so a grant another node committed meanwhile is seen.
async fn stored_consumptions(
    tx: &mut Tx,
    jobs: &[Job],
) -> moltflow_store::Result<HashMap<(String, String), ConsumptionRow>> {
    let pairs: BTreeSet<(&str, &str)> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Consume(job, _) => job.idempotency_key.as_deref().map(|k| (job.tenant_id.as_str(), k)),
            Job::Events(..) => None,
        })
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    Ok(find_consumptions(tx, &pairs)
        .await?
        .into_iter()
        .map(|r| ((r.tenant_id.clone(), r.idempotency_key.clone()), r))
        .collect())
}

async fn apply_events(
    tx: &mut Tx,
    job: &EventsJob,
    daily: &mut BTreeMap<DailyKey, i64>,
    counters: &mut Counters,
) -> moltflow_store::Result<EventsOutcome> {
    let fresh = insert_events(tx, &job.tenant_id, &job.events).await?;
    // Sum by borrowed keys first: a batch has few distinct (day, session, metric), many events.
    let mut days: HashMap<(&str, &str, &'static str), i64> = HashMap::new();
    let mut months: HashMap<(Month, &'static str), i64> = HashMap::new();
    let mut accepted = 0u64;
    for e in job.events.iter().filter(|e| fresh.contains(&e.event_id)) {
        accepted += 1;
        *days.entry((e.day.as_str(), e.session_id.as_deref().unwrap_or(""), e.metric)).or_default() += e.quantity;
        *months.entry((Month::of_ms(e.at), e.metric)).or_default() += e.quantity;
    }
    for ((day, session_id, metric), n) in days {
        let key = DailyKey {
            tenant_id: job.tenant_id.clone(),
            day: day.to_owned(),
            session_id: session_id.to_owned(),
            metric,
        };
        *daily.entry(key).or_default() += n;
    }
    for ((month, metric), n) in months {
        counters.add(&MonthlyKey { tenant_id: job.tenant_id.clone(), month: month.to_string(), metric }, n);
    }
    Ok(EventsOutcome { accepted, duplicates: job.events.len() as u64 - accepted })
}

fn replayed(row: ConsumptionRow) -> ConsumeOutcome {
    ConsumeOutcome::Replayed { metric: row.metric, quantity: row.quantity, used: row.used, limit: row.limit_value }
}
