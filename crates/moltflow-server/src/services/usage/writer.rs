//! The usage writer: group commit for the hottest write path.
//!
//! Requests do not open transactions of their own. They enqueue a job and wait; one task takes
//! every job waiting (up to [`MAX_JOBS`]), applies them in order inside ONE transaction, commits,
//! and only then answers each request. So an answered request is on disk (write-ahead: nothing is
//! acknowledged from memory), while a commit's fsync is shared by the whole batch.
//!
//! Quota decisions are made by the database inside that transaction (`UPDATE … WHERE used + q <=
//! limit`), never from a cached count: on SQLite the writer holds the write lock, on PostgreSQL
//! the row lock makes concurrent nodes re-check against the committed total. Either way the sum
//! of grants never passes the limit, however many nodes and requests race.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use moltflow_core::clock::now_ms;
use moltflow_core::period::{Day, Month};
use moltflow_core::plan::{DEFAULT_PLAN, Limits, PlanCatalogue};
use moltflow_core::usage::Metric;
use moltflow_store::usage::{
    ConsumptionRow, DailyKey, EventRow, MonthlyKey, add_daily, add_monthly, consume_unlimited, consume_within_limit,
    find_consumption, insert_consumption, insert_events, insert_monthly_if_absent, monthly_used, unconsume,
};
use moltflow_store::{Backend, Store, Tx};

use super::cache::DailyCache;
use crate::error::store_unavailable;
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

enum Job {
    Events(EventsJob, oneshot::Sender<Result<EventsOutcome, WriterError>>),
    Consume(ConsumeJob, oneshot::Sender<Result<ConsumeOutcome, WriterError>>),
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
    let now = now_ms();
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut limits: HashMap<String, Limits> = HashMap::new();
    // Daily sums of the whole batch (events and grants), written once at the end: nothing reads
    // them inside the batch. Monthly sums of events are written before the next consume, which
    // must see them.
    let mut daily: BTreeMap<DailyKey, i64> = BTreeMap::new();
    let mut monthly: BTreeMap<MonthlyKey, i64> = BTreeMap::new();
    for job in jobs {
        outcomes.push(match job {
            Job::Events(job, _) => Outcome::Events(apply_events(&mut tx, job, &mut daily, &mut monthly).await?),
            Job::Consume(job, _) => {
                if !monthly.is_empty() {
                    add_monthly(&mut tx, &std::mem::take(&mut monthly).into_iter().collect::<Vec<_>>()).await?;
                }
                if !limits.contains_key(&job.tenant_id) {
                    let l = tenant_limits(&mut tx, plans, &job.tenant_id).await?;
                    limits.insert(job.tenant_id.clone(), l);
                }
                let l = limits.get(&job.tenant_id).cloned().unwrap_or_default();
                let outcome = apply_consume(&mut tx, job, &l, now).await?;
                if matches!(outcome, ConsumeOutcome::Granted { .. }) {
                    let key = DailyKey {
                        tenant_id: job.tenant_id.clone(),
                        day: Day::of_ms(now).to_string(),
                        session_id: job.session_id.clone().unwrap_or_default(),
                        metric: job.metric.as_str(),
                    };
                    *daily.entry(key).or_default() += job.quantity;
                }
                Outcome::Consume(outcome)
            }
        });
    }
    // One upsert per key for the whole batch, in key order so that nodes writing concurrently
    // lock rows in the same order.
    add_monthly(&mut tx, &monthly.into_iter().collect::<Vec<_>>()).await?;
    let touched: Touched =
        daily.keys().map(|k| (k.tenant_id.clone(), k.day.get(..7).unwrap_or(&k.day).to_owned())).collect();
    add_daily(&mut tx, &daily.into_iter().collect::<Vec<_>>()).await?;
    tx.commit().await?;
    Ok((outcomes, touched))
}

/// The tenant's plan limits as of this transaction: a plan change counts from the next consume.
async fn tenant_limits(tx: &mut Tx, plans: &PlanCatalogue, tenant_id: &str) -> moltflow_store::Result<Limits> {
    let plan_id = moltflow_store::accounts::find_tenant(tx, tenant_id).await?.map(|t| t.plan_id);
    let plan_id = plan_id.as_deref().unwrap_or(DEFAULT_PLAN);
    let plan = plans.get(plan_id).or_else(|| {
        tracing::warn!(plan_id, "tenant on a plan missing from the catalogue; applying the default plan's limits");
        plans.get(DEFAULT_PLAN)
    });
    Ok(plan.map(|p| p.limits.clone()).unwrap_or_default())
}

async fn apply_events(
    tx: &mut Tx,
    job: &EventsJob,
    daily: &mut BTreeMap<DailyKey, i64>,
    monthly: &mut BTreeMap<MonthlyKey, i64>,
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
        *monthly
            .entry(MonthlyKey { tenant_id: job.tenant_id.clone(), month: month.to_string(), metric })
            .or_default() += n;
    }
    Ok(EventsOutcome { accepted, duplicates: job.events.len() as u64 - accepted })
}

async fn apply_consume(
    tx: &mut Tx,
    job: &ConsumeJob,
    limits: &Limits,
    now: i64,
) -> moltflow_store::Result<ConsumeOutcome> {
    if let Some(key) = &job.idempotency_key
        && let Some(row) = find_consumption(tx, &job.tenant_id, key).await?
    {
        return Ok(replayed(row));
    }
    let month = Month::of_ms(now);
    let counter =
        MonthlyKey { tenant_id: job.tenant_id.clone(), month: month.to_string(), metric: job.metric.as_str() };
    let q = job.quantity;
    let limit = job.metric.limit(limits).map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    let used = match limit {
        None => consume_unlimited(tx, &counter, q).await?,
        Some(limit) => match consume_within_limit(tx, &counter, q, limit).await? {
            Some(used) => used,
            None => match monthly_used(tx, &counter).await? {
                Some(used) => return Ok(ConsumeOutcome::Denied { used, limit, month }),
                None if q > limit => return Ok(ConsumeOutcome::Denied { used: 0, limit, month }),
                None if insert_monthly_if_absent(tx, &counter, q).await? => q,
                // Another node created this month's counter between our two statements.
                None => match consume_within_limit(tx, &counter, q, limit).await? {
                    Some(used) => used,
                    None => {
                        let used = monthly_used(tx, &counter).await?.unwrap_or(0);
                        return Ok(ConsumeOutcome::Denied { used, limit, month });
                    }
                },
            },
        },
    };
    if let Some(key) = &job.idempotency_key {
        let row = ConsumptionRow {
            tenant_id: job.tenant_id.clone(),
            idempotency_key: key.clone(),
            metric: job.metric.as_str().to_owned(),
            quantity: q,
            used,
            limit_value: limit,
            at: now,
        };
        if !insert_consumption(tx, &row).await? {
            // The same key was granted concurrently on another node: count it once.
            unconsume(tx, &counter, q).await?;
            if let Some(row) = find_consumption(tx, &job.tenant_id, key).await? {
                return Ok(replayed(row));
            }
        }
    }
    Ok(ConsumeOutcome::Granted { used, limit })
}

fn replayed(row: ConsumptionRow) -> ConsumeOutcome {
    ConsumeOutcome::Replayed { metric: row.metric, quantity: row.quantity, used: row.used, limit: row.limit_value }
}
