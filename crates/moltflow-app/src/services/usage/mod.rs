//! Usage metering and quotas (API.md §7): ingesting events, consuming quota against the plan,
//! setting gauges; the reports are in [`report`], the group-commit writer in [`writer`]. The use
//! cases are methods of [`Usage`], which borrows what they read and write.

pub mod cache;
mod counters;
pub mod report;
pub mod writer;

use std::collections::HashSet;

use moltflow_core::clock::{Clock, DAY_MS, MINUTE_MS, rfc3339};
use moltflow_core::period::Day;
use moltflow_core::plan::PlanCatalogue;
use moltflow_core::usage::{MAX_QUANTITY, Metric, remaining_and_percent};
use moltflow_store::Store;
use moltflow_store::usage::{EventRow, set_gauge};
use moltflow_types::{ConsumeRequest, ConsumeResponse, Gauges, GaugesRequest, UsageEventsRequest, UsageEventsResponse};
use serde_json::Number;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::services::failure::{Failure, Issues, Outcome, Refusal};
use crate::services::principal::Authorized;
use crate::services::principal::guards::UsageWrite;
use writer::{ConsumeJob, ConsumeOutcome, EventsJob, UsageWriter, WriterError};

/// What the usage use cases work with.
pub struct Usage<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    /// The limits a tenant's plan sets.
    pub plans: &'a PlanCatalogue,
    /// Events and consumes are committed in groups by the writer (and its daily-report cache).
    pub writer: &'a UsageWriter,
}

pub const MAX_EVENTS: usize = 1000;
/// Events older than this are refused: late reports would rewrite closed months' invoices.
pub const MAX_EVENT_AGE_MS: i64 = 35 * DAY_MS;
/// Clocks of reporting services drift a little; more than this ahead is a bug.
pub const MAX_EVENT_SKEW_MS: i64 = 5 * MINUTE_MS;
/// Ids, keys and session ids: 1 to this many characters.
const MAX_ID_CHARS: usize = 128;
/// A gauge is a count of things a tenant has; far above any real one.
const MAX_GAUGE: u64 = 1_000_000_000;

impl Usage<'_> {
    /// Counts a batch of events once per id: how many were new, how many replays.
    pub async fn ingest_events(
        &self,
        p: &Authorized<UsageWrite>,
        req: UsageEventsRequest,
    ) -> Outcome<UsageEventsResponse> {
        let tenant_id = p.tenant_id();
        let now = self.clock.now_ms();
        let events = validate_events(req, now)?;
        let outcome = self
            .writer
            .events(EventsJob { tenant_id: tenant_id.to_owned(), events, now })
            .await
            .map_err(writer_error)?;
        Ok(UsageEventsResponse { accepted: outcome.accepted, duplicates: outcome.duplicates })
    }

    /// Drops idempotency keys past their lifetime (run by the housekeeping task).
    pub async fn sweep_idempotency_keys(&self) -> Outcome<u64> {
        let mut conn = self.store.conn().await?;
        let before = self.clock.now_ms() - IDEMPOTENCY_KEY_TTL_MS;
        Ok(moltflow_store::usage::delete_consumptions_before(&mut conn, before).await?)
    }

    /// Checks and counts quota atomically; `Limited` (`quota_exceeded`) when it would pass the
    /// plan's limit.
    pub async fn consume(&self, p: &Authorized<UsageWrite>, req: ConsumeRequest) -> Outcome<ConsumeResponse> {
        let tenant_id = p.tenant_id();
        let now = self.clock.now_ms();
        let mut issues = Issues::default();
        let metric = check_counter(&mut issues, "metric", &req.metric);
        let quantity = check_quantity(&mut issues, "quantity", &req.quantity);
        check_opt_id(&mut issues, "session_id", req.session_id.as_deref());
        check_opt_id(&mut issues, "idempotency_key", req.idempotency_key.as_deref());
        issues.finish()?;
        let (Some(metric), Some(quantity)) = (metric, quantity) else {
            return Err(Failure::unexpected(anyhow::anyhow!("a valid consume without its metric or quantity")));
        };
        let job = ConsumeJob {
            tenant_id: tenant_id.to_owned(),
            metric,
            quantity,
            session_id: req.session_id,
            idempotency_key: req.idempotency_key,
            now,
        };
        let granted = |used: i64, limit: Option<i64>| {
            let used = used.max(0) as u64;
            let limit = limit.map(|l| l.max(0) as u64);
            ConsumeResponse {
                allowed: true,
                metric: metric.as_str().to_owned(),
                used,
                limit,
                remaining: remaining_and_percent(used, limit).0,
            }
        };
        match self.writer.consume(job).await.map_err(writer_error)? {
            ConsumeOutcome::Granted { used, limit } => Ok(granted(used, limit)),
            ConsumeOutcome::Replayed { metric: m, quantity: q, used, limit } => {
                if m != metric.as_str() || q != quantity {
                    return Err(Failure::conflict(
                        "idempotency_key_reused",
                        "This idempotency key was used for a different metric or quantity",
                    ));
                }
                Ok(granted(used, limit))
            }
            ConsumeOutcome::Denied { used, limit, month } => {
                let resets_at = month.end_ms();
                let wait = ((resets_at - now).max(1000) / 1000) as u64;
                let name = match metric {
                    Metric::AiReplies => "AI replies".to_owned(),
                    other => other.as_str().replace('_', " "),
                };
                // A zero limit is a metric the plan does not include, not one used up this month.
                let detail = if limit == 0 {
                    format!("Your plan does not include {name}")
                } else {
                    format!("Monthly {name} quota exceeded")
                };
                let refusal = Refusal::new("quota_exceeded", detail)
                    .with("metric", metric.as_str())
                    .with("limit", limit)
                    .with("used", used)
                    .with("resets_at", rfc3339(resets_at));
                Err(Failure::Limited { refusal, retry_after_s: wait })
            }
        }
    }

    /// Sets the gauges present in the request; answers every gauge.
    pub async fn set_gauges(&self, p: &Authorized<UsageWrite>, req: GaugesRequest) -> Outcome<Gauges> {
        let tenant_id = p.tenant_id();
        let mut checks = Issues::default();
        let mut values = Vec::new();
        for (metric, value) in
            [(Metric::Sessions, &req.sessions), (Metric::Groups, &req.groups), (Metric::Labels, &req.labels)]
        {
            if let Some(n) = value {
                match whole(n).filter(|v| *v <= MAX_GAUGE) {
                    Some(v) => values.push((metric, v as i64)),
                    None => checks.fail(
                        metric.as_str(),
                        format!("Input should be an integer from 0 to {MAX_GAUGE}"),
                        "int_type",
                    ),
                }
            }
        }
        if values.is_empty() && checks.is_empty() {
            checks.fail("", "Set at least one of sessions, groups, labels", "missing");
        }
        checks.finish()?;
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        for (metric, value) in values {
            set_gauge(&mut tx, tenant_id, metric.as_str(), value, now).await?;
        }
        tx.commit().await?;
        let mut conn = self.store.conn().await?;
        Ok(report::gauges(&mut conn, tenant_id).await?)
    }
}

/// How long a consume's idempotency key is honoured: as long as a late event may still arrive.
pub const IDEMPOTENCY_KEY_TTL_MS: i64 = MAX_EVENT_AGE_MS;

fn writer_error(err: WriterError) -> Failure {
    let detail = match err {
        WriterError::Busy => "Usage is being written as fast as possible; retry shortly",
        // Logged once per batch by the writer.
        WriterError::Unavailable(_) => {
            return Failure::unavailable("database_unavailable", "The database is unavailable; retry shortly", Some(1));
        }
        other => {
            tracing::error!(error = %other, "usage writer");
            "Usage cannot be recorded right now; retry shortly"
        }
    };
    Failure::unavailable("unavailable", detail, Some(1))
}

fn validate_events(req: UsageEventsRequest, now: i64) -> Outcome<Vec<EventRow>> {
    let mut checks = Issues::default();
    if req.events.is_empty() {
        checks.fail("events", "List should have at least 1 item", "too_short");
    } else if req.events.len() > MAX_EVENTS {
        checks.fail("events", format!("List should have at most {MAX_EVENTS} items"), "too_long");
    }
    std::mem::take(&mut checks).finish()?;
    let mut seen = HashSet::with_capacity(req.events.len());
    let mut rows = Vec::with_capacity(req.events.len());
    for (i, e) in req.events.into_iter().enumerate() {
        let loc = |field: &str| format!("events.{i}.{field}");
        check_id(&mut checks, &loc("id"), &e.id);
        if !seen.insert(e.id.clone()) {
            checks.fail(&loc("id"), "Duplicate event id within the batch", "value_error");
        }
        let metric = check_counter(&mut checks, &loc("metric"), &e.metric);
        let quantity = check_quantity(&mut checks, &loc("quantity"), &e.quantity);
        check_opt_id(&mut checks, &loc("session_id"), e.session_id.as_deref());
        let at = match &e.timestamp {
            None => Some(now),
            Some(t) => check_timestamp(&mut checks, &loc("timestamp"), t, now),
        };
        if let (Some(metric), Some(quantity), Some(at)) = (metric, quantity, at) {
            rows.push(EventRow {
                event_id: e.id,
                metric: metric.as_str(),
                quantity,
                session_id: e.session_id,
                day: Day::of_ms(at).to_string(),
                at,
            });
        }
        // A thousand bad events need not produce a thousand items.
        if checks.len() >= 20 {
            break;
        }
    }
    checks.finish()?;
    Ok(rows)
}

fn check_counter(checks: &mut Issues, loc: &str, name: &str) -> Option<Metric> {
    match Metric::parse(name) {
        Some(m) if m.is_counter() => Some(m),
        Some(_) => {
            checks.fail(loc, "Gauges (sessions, groups, labels) are set with PUT /usage/gauges", "value_error");
            None
        }
        None => {
            checks.fail(loc, "Input should be 'messages' or 'ai_replies'", "enum");
            None
        }
    }
}

/// An integer 1..=MAX_QUANTITY: `1.5`, `0`, `-3` and `2^63` are refused.
/// A JSON number that is a whole number, `3.0` included (JSON Schema's `integer`).
fn whole(n: &Number) -> Option<u64> {
    n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9.0e15).map(|f| f as u64))
}

fn check_quantity(checks: &mut Issues, loc: &str, n: &Number) -> Option<i64> {
    match whole(n) {
        Some(q) if (1..=MAX_QUANTITY).contains(&q) => Some(q as i64),
        None if n.is_f64() => {
            checks.fail(loc, "Input should be a valid integer", "int_type");
            None
        }
        _ => {
            checks.fail(loc, format!("Input should be an integer from 1 to {MAX_QUANTITY}"), "value_error");
            None
        }
    }
}

fn check_id(checks: &mut Issues, loc: &str, id: &str) {
    let len = id.chars().count();
    if len == 0 {
        checks.fail(loc, "String should have at least 1 character", "string_too_short");
    } else if len > MAX_ID_CHARS {
        checks.fail(loc, format!("String should have at most {MAX_ID_CHARS} characters"), "string_too_long");
    } else if id.chars().any(char::is_control) {
        checks.fail(loc, "Control characters are not allowed", "value_error");
    }
}

fn check_opt_id(checks: &mut Issues, loc: &str, id: Option<&str>) {
    if let Some(id) = id {
        check_id(checks, loc, id);
    }
}

fn check_timestamp(checks: &mut Issues, loc: &str, raw: &str, now: i64) -> Option<i64> {
    let Ok(at) = OffsetDateTime::parse(raw, &Rfc3339) else {
        checks.fail(loc, "Input should be an RFC 3339 date-time", "datetime_parsing");
        return None;
    };
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    if ms < now - MAX_EVENT_AGE_MS {
        checks.fail(loc, "Events older than 35 days are not accepted", "value_error");
        None
    } else if ms > now + MAX_EVENT_SKEW_MS {
        checks.fail(loc, "Event timestamps may be at most 5 minutes in the future", "value_error");
        None
    } else {
        Some(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantity(raw: &str) -> Option<i64> {
        let n: Number = serde_json::from_str(raw).unwrap();
        check_quantity(&mut Issues::default(), "quantity", &n)
    }

    #[test]
    fn quantities_are_positive_integers_up_to_the_cap() {
        assert_eq!(quantity("1"), Some(1));
        assert_eq!(quantity("1000000"), Some(1_000_000));
        // JSON Schema's `integer` is any number without a fraction: `3.0` is 3.
        assert_eq!(quantity("3.0"), Some(3));
        for bad in ["0", "-1", "1.5", "0.0", "1000001", "1000001.0", "9223372036854775808", "1e30"] {
            assert_eq!(quantity(bad), None, "{bad}");
        }
    }
}
