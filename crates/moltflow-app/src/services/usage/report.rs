//! Usage reports: the current period against the plan, monthly history, daily detail. All read
//! the aggregate tables by primary-key ranges and fill the gaps with zeros here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use moltflow_core::clock::rfc3339;
use moltflow_core::period::{Day, Month};
use moltflow_core::plan::{DEFAULT_PLAN, Limits};
use moltflow_core::usage::{Metric, remaining_and_percent};
use moltflow_store::AsDbConn;
use moltflow_store::accounts::find_tenant;
use moltflow_store::usage::{daily_between, monthly_between};
use moltflow_types::{
    Gauges, MetricUsage, SubscriptionUsage, UsageCurrent, UsageDaily, UsageDay, UsageMetrics, UsageMonth,
};

use super::Usage;
use crate::services::failure::{Failure, Outcome};
use crate::services::principal::Authorized;
use crate::services::principal::guards::UsageRead;

/// Months before this are refused by `/usage/daily`: the service did not exist.
const FIRST_MONTH: (i32, u8) = (2000, 1);
pub const MAX_HISTORY_MONTHS: u32 = 36;

/// This month's counters and the gauges, as numbers per metric.
struct Snapshot {
    plan_id: String,
    limits: Limits,
    month: Month,
    used: HashMap<Metric, u64>,
}

/// The reports read the aggregate tables; their inputs come from a query string (the HTTP edge
/// places their issues there).
impl Usage<'_> {
    async fn snapshot(&self, tenant_id: &str) -> Outcome<Snapshot> {
        let month = Month::of_ms(self.clock.now_ms());
        let mut conn = self.store.conn().await?;
        let plan_id =
            find_tenant(&mut conn, tenant_id).await?.map(|t| t.plan_id).unwrap_or_else(|| DEFAULT_PLAN.into());
        let limits = self.plans.get(&plan_id).or_else(|| self.plans.get(DEFAULT_PLAN)).map(|p| p.limits.clone());
        let key = month.to_string();
        let mut used = HashMap::new();
        for row in monthly_between(&mut conn, tenant_id, &key, &key).await? {
            if let Some(m) = Metric::parse(&row.metric) {
                used.insert(m, row.used.max(0) as u64);
            }
        }
        for (metric, value) in moltflow_store::usage::gauges(&mut conn, tenant_id).await? {
            if let Some(m) = Metric::parse(&metric) {
                used.insert(m, value.max(0) as u64);
            }
        }
        Ok(Snapshot { plan_id, limits: limits.unwrap_or_default(), month, used })
    }

    /// `GET /usage/current`.
    pub async fn current(&self, p: &Authorized<UsageRead>) -> Outcome<UsageCurrent> {
        let tenant_id = p.tenant_id();
        let s = self.snapshot(tenant_id).await?;
        let metric = |m: Metric| {
            let used = s.used.get(&m).copied().unwrap_or(0);
            let limit = m.limit(&s.limits);
            let (remaining, percent) = remaining_and_percent(used, limit);
            MetricUsage { used, limit, remaining, percent, included: limit != Some(0) }
        };
        Ok(UsageCurrent {
            period_start: rfc3339(s.month.start_ms()),
            period_end: rfc3339(s.month.end_ms()),
            plan_id: s.plan_id.clone(),
            metrics: UsageMetrics {
                messages: metric(Metric::Messages),
                ai_replies: metric(Metric::AiReplies),
                sessions: metric(Metric::Sessions),
                groups: metric(Metric::Groups),
                labels: metric(Metric::Labels),
            },
        })
    }

    /// The `usage` block of `GET /billing/subscription`: the same numbers as `/usage/current`.
    pub(crate) async fn subscription_usage(&self, tenant_id: &str) -> Outcome<SubscriptionUsage> {
        let s = self.snapshot(tenant_id).await?;
        let n = |m: Metric| s.used.get(&m).copied().unwrap_or(0);
        Ok(SubscriptionUsage {
            sessions: n(Metric::Sessions),
            messages_this_month: n(Metric::Messages),
            groups: n(Metric::Groups),
            labels: n(Metric::Labels),
            ai_replies_this_month: n(Metric::AiReplies),
        })
    }

    /// `GET /usage/history?months=`: this month and the `months - 1` before it, newest first.
    pub async fn history(&self, p: &Authorized<UsageRead>, months: Option<&str>) -> Outcome<Vec<UsageMonth>> {
        let tenant_id = p.tenant_id();
        let months = match months {
            None => 12,
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_HISTORY_MONTHS).contains(&n) => n,
                Ok(_) => return Err(query_error("months", "Input should be from 1 to 36", "value_error")),
                Err(_) => return Err(query_error("months", "Input should be a valid integer", "int_parsing")),
            },
        };
        let newest = Month::of_ms(self.clock.now_ms());
        let mut oldest = newest;
        for _ in 1..months {
            oldest = oldest.prev();
        }
        let mut conn = self.store.conn().await?;
        let mut sums: HashMap<(String, Metric), u64> = HashMap::new();
        for row in monthly_between(&mut conn, tenant_id, &oldest.to_string(), &newest.to_string()).await? {
            if let Some(m) = Metric::parse(&row.metric) {
                sums.insert((row.month, m), row.used.max(0) as u64);
            }
        }
        let mut out = Vec::with_capacity(months as usize);
        let mut month = newest;
        for _ in 0..months {
            let key = month.to_string();
            let get = |m| sums.get(&(key.clone(), m)).copied().unwrap_or(0);
            out.push(UsageMonth {
                messages: get(Metric::Messages),
                ai_replies: get(Metric::AiReplies),
                month: key.clone(),
            });
            month = month.prev();
        }
        Ok(out)
    }

    /// `GET /usage/daily?month=&session_id=`: every day of the month up to today, zero-filled.
    pub async fn daily(
        &self,
        p: &Authorized<UsageRead>,
        month: Option<&str>,
        session_id: Option<&str>,
    ) -> Outcome<UsageDaily> {
        let tenant_id = p.tenant_id();
        let today = Day::of_ms(self.clock.now_ms());
        let month = match month {
            None => today.month(),
            Some(raw) => {
                let m = Month::parse(raw.trim())
                    .ok_or_else(|| query_error("month", "Input should be a month as YYYY-MM", "value_error"))?;
                let first = Month::new(FIRST_MONTH.0, FIRST_MONTH.1).unwrap_or(m);
                if m < first || m > today.month() {
                    return Err(query_error(
                        "month",
                        "Month should be between 2000-01 and the current month",
                        "value_error",
                    ));
                }
                m
            }
        };
        if let Some(s) = session_id
            && (s.is_empty() || s.chars().count() > 128)
        {
            return Err(query_error("session_id", "String should have 1 to 128 characters", "value_error"));
        }
        let last = if month == today.month() { today.day() } else { month.days() };
        let month_key = month.to_string();
        let cache = self.writer.daily_cache();
        let folded = match cache.get(tenant_id, &month_key, last, session_id) {
            Ok(hit) => hit,
            Err(generation) => {
                let mut conn = self.store.conn().await?;
                let (from, to) = (month.day(1).to_string(), month.day(last).to_string());
                let folded = Arc::new(daily_between(&mut conn, tenant_id, &from, &to, session_id).await?);
                cache.put(generation, tenant_id, &month_key, last, session_id, folded.clone());
                folded
            }
        };
        let mut days: Vec<UsageDay> = (1..=last)
            .map(|d| UsageDay {
                date: month.day(d).to_string(),
                messages: 0,
                ai_replies: 0,
                by_session: BTreeMap::new(),
            })
            .collect();
        for row in folded.rows() {
            let row = row?;
            let Some(day) =
                row.day.get(8..10).and_then(|d| d.parse::<usize>().ok()).filter(|d| (1..=last as usize).contains(d))
            else {
                continue;
            };
            let entry = &mut days[day - 1];
            let n = row.quantity.max(0) as u64;
            match Metric::parse(row.metric) {
                Some(Metric::Messages) => {
                    entry.messages += n;
                    if !row.session_id.is_empty() && n > 0 {
                        *entry.by_session.entry(row.session_id.to_owned()).or_default() += n;
                    }
                }
                Some(Metric::AiReplies) => entry.ai_replies += n,
                _ => {}
            }
        }
        Ok(UsageDaily { month: month_key, days })
    }
}

/// Every gauge, zero when never set.
pub async fn gauges(c: &mut impl AsDbConn, tenant_id: &str) -> moltflow_store::Result<Gauges> {
    let mut g = Gauges { sessions: 0, groups: 0, labels: 0 };
    for (metric, value) in moltflow_store::usage::gauges(c, tenant_id).await? {
        let value = value.max(0) as u64;
        match Metric::parse(&metric) {
            Some(Metric::Sessions) => g.sessions = value,
            Some(Metric::Groups) => g.groups = value,
            Some(Metric::Labels) => g.labels = value,
            _ => {}
        }
    }
    Ok(g)
}

fn query_error(name: &str, msg: &str, kind: &'static str) -> Failure {
    Failure::invalid(name, msg, kind)
}
