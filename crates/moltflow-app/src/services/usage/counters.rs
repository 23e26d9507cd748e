//! The monthly counters one batch of the usage writer changes, and the quota decision made
//! against them in memory while the batch holds their locks (see `writer`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use moltflow_core::period::Month;
use moltflow_core::plan::{DEFAULT_PLAN, Limits, PlanCatalogue};
use moltflow_store::Tx;
use moltflow_store::usage::{DailyKey, MonthlyKey, SumWrites, lock_monthly};

use super::writer::{ConsumeJob, ConsumeOutcome, Job};

/// The monthly counters a batch changes. Those a consume may change are locked and decided in
/// memory; events of other counters (a batch without consumes: all of them) are added by one
/// upsert at the end, which needs no decision.
pub(super) struct Counters {
    /// Locked totals, as changed by the batch so far.
    locked: HashMap<MonthlyKey, i64>,
    /// The plan of each tenant with a locked counter, read with the lock (`None`: tenant gone).
    plans: HashMap<String, Option<String>>,
    changed: BTreeSet<MonthlyKey>,
    /// Additions to counters not locked.
    added: BTreeMap<MonthlyKey, i64>,
}

impl Counters {
    /// Locks, when the batch has a consume, every counter it may change: this month's of each
    /// consume and those of every event (duplicates are only known after their insert).
    pub(super) async fn lock(tx: &mut Tx, jobs: &[Job], month: &Month) -> moltflow_store::Result<Counters> {
        let mut keys: BTreeSet<MonthlyKey> = BTreeSet::new();
        if jobs.iter().any(|j| matches!(j, Job::Consume(..))) {
            for job in jobs {
                match job {
                    Job::Consume(job, _) => {
                        keys.insert(MonthlyKey {
                            tenant_id: job.tenant_id.clone(),
                            month: month.to_string(),
                            metric: job.metric.as_str(),
                        });
                    }
                    Job::Events(job, _) => {
                        let mut seen: BTreeSet<(Month, &'static str)> = BTreeSet::new();
                        for e in &job.events {
                            seen.insert((Month::of_ms(e.at), e.metric));
                        }
                        keys.extend(seen.into_iter().map(|(m, metric)| MonthlyKey {
                            tenant_id: job.tenant_id.clone(),
                            month: m.to_string(),
                            metric,
                        }));
                    }
                }
            }
        }
        let keys: Vec<MonthlyKey> = keys.into_iter().collect();
        let rows = lock_monthly(tx, &keys).await?;
        // By key, not a search per key: a batch of 100 tenants locks hundreds of counters.
        let found: HashMap<(&str, &str, &str), i64> =
            rows.iter().map(|r| ((r.tenant_id.as_str(), r.month.as_str(), r.metric.as_str()), r.used)).collect();
        let plans: HashMap<String, Option<String>> =
            rows.iter().map(|r| (r.tenant_id.clone(), r.plan_id.clone())).collect();
        let mut locked = HashMap::with_capacity(keys.len());
        for key in &keys {
            let used =
                found.get(&(key.tenant_id.as_str(), key.month.as_str(), key.metric)).copied().ok_or_else(|| {
                    moltflow_store::StoreError::corrupt(format!("usage_monthly: counter {key:?} not locked"))
                })?;
            locked.insert(key.clone(), used);
        }
        Ok(Counters { locked, plans, changed: BTreeSet::new(), added: BTreeMap::new() })
    }

    fn used(&self, key: &MonthlyKey) -> i64 {
        self.locked.get(key).copied().unwrap_or(0)
    }

    pub(super) fn add(&mut self, key: &MonthlyKey, n: i64) {
        match self.locked.get_mut(key) {
            Some(used) => {
                *used += n;
                self.changed.insert(key.clone());
            }
            None => *self.added.entry(key.clone()).or_default() += n,
        }
    }

    /// The plan limits of every tenant with a locked counter (every tenant that consumes in the
    /// batch), as of the lock: a plan change counts from the next batch.
    pub(super) fn limits(&self, plans: &PlanCatalogue) -> HashMap<String, Limits> {
        self.plans
            .iter()
            .map(|(tenant_id, plan_id)| {
                let plan_id = plan_id.as_deref().unwrap_or(DEFAULT_PLAN);
                let plan = plans.get(plan_id).or_else(|| {
                    tracing::warn!(
                        plan_id,
                        "tenant on a plan missing from the catalogue; applying the default plan's limits"
                    );
                    plans.get(DEFAULT_PLAN)
                });
                (tenant_id.clone(), plan.map(|p| p.limits.clone()).unwrap_or_default())
            })
            .collect()
    }

    /// What the batch writes: the new totals of the locked counters that changed and the
    /// additions to the others, in key order, with the batch's daily sums.
    pub(super) fn into_writes(self, add_daily: Vec<(DailyKey, i64)>) -> SumWrites {
        let set_monthly = self
            .changed
            .into_iter()
            .map(|k| {
                let n = self.locked.get(&k).copied().unwrap_or(0);
                (k, n)
            })
            .collect();
        SumWrites { set_monthly, add_monthly: self.added.into_iter().filter(|(_, n)| *n != 0).collect(), add_daily }
    }
}

/// Grants `job` if this month's counter stays within the limit.
pub(super) fn decide(counters: &mut Counters, job: &ConsumeJob, limits: &Limits, month: &Month) -> ConsumeOutcome {
    let key = MonthlyKey { tenant_id: job.tenant_id.clone(), month: month.to_string(), metric: job.metric.as_str() };
    let limit = job.metric.limit(limits).map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    let used = counters.used(&key);
    match limit {
        Some(limit) if used.saturating_add(job.quantity) > limit => {
            ConsumeOutcome::Denied { used, limit, month: *month }
        }
        _ => {
            counters.add(&key, job.quantity);
            ConsumeOutcome::Granted { used: used + job.quantity, limit }
        }
    }
}
