//! Cache of `/usage/daily` rows per tenant and month, invalidated by the usage writer.
//!
//! Only on SQLite: there the writer of this process is the only writer of `usage_daily`, so
//! invalidating after each commit (and before answering its requests) keeps the cache exact. On
//! PostgreSQL other nodes write too, so the cache is off and every report reads the database.
//!
//! A reader notes the generation before its query and stores its answer only if no commit was
//! invalidated since: an answer read before a commit can never be cached after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use moltflow_store::usage::DailyFolded;

/// Tenant-months kept at most; the cache starts over when full.
const MAX_MONTHS: usize = 4096;
/// Variants (last day, session filter) kept per tenant-month at most.
const MAX_VARIANTS: usize = 64;

type Variant = (u8, Option<String>);

#[derive(Default)]
struct Entries {
    generation: u64,
    months: HashMap<(String, String), HashMap<Variant, Arc<DailyFolded>>>,
}

pub struct DailyCache {
    enabled: bool,
    entries: Mutex<Entries>,
}

impl DailyCache {
    pub fn new(enabled: bool) -> DailyCache {
        DailyCache { enabled, entries: Mutex::new(Entries::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached rows, or the generation to hand to [`DailyCache::put`] after reading them.
    pub fn get(
        &self,
        tenant_id: &str,
        month: &str,
        last: u8,
        session_id: Option<&str>,
    ) -> Result<Arc<DailyFolded>, u64> {
        if !self.enabled {
            return Err(0);
        }
        let entries = self.lock();
        let hit = entries
            .months
            .get(&(tenant_id.to_owned(), month.to_owned()))
            .and_then(|v| v.get(&(last, session_id.map(str::to_owned))));
        hit.cloned().ok_or(entries.generation)
    }

    /// Keeps `rows` unless a commit touching any month was invalidated since `generation`.
    pub fn put(
        &self,
        generation: u64,
        tenant_id: &str,
        month: &str,
        last: u8,
        session_id: Option<&str>,
        rows: Arc<DailyFolded>,
    ) {
        if !self.enabled {
            return;
        }
        let mut entries = self.lock();
        if entries.generation != generation {
            return;
        }
        if entries.months.len() >= MAX_MONTHS {
            entries.months.clear();
        }
        let variants = entries.months.entry((tenant_id.to_owned(), month.to_owned())).or_default();
        if variants.len() >= MAX_VARIANTS {
            variants.clear();
        }
        variants.insert((last, session_id.map(str::to_owned)), rows);
    }

    /// Forgets the months a commit wrote daily sums to (`(tenant_id, "YYYY-MM")`).
    pub fn invalidate<'a>(&self, months: impl IntoIterator<Item = (&'a str, &'a str)>) {
        if !self.enabled {
            return;
        }
        let mut entries = self.lock();
        entries.generation += 1;
        for (tenant_id, month) in months {
            entries.months.remove(&(tenant_id.to_owned(), month.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_read_before_an_invalidation_is_not_kept() {
        let cache = DailyCache::new(true);
        let rows = Arc::new(DailyFolded::default());
        let g = cache.get("t", "2026-10", 31, None).unwrap_err();
        cache.invalidate([("t", "2026-10")]);
        cache.put(g, "t", "2026-10", 31, None, rows.clone());
        let g = cache.get("t", "2026-10", 31, None).unwrap_err();
        cache.put(g, "t", "2026-10", 31, None, rows);
        assert!(cache.get("t", "2026-10", 31, None).is_ok());
        assert!(cache.get("t", "2026-10", 31, Some("wa-1")).is_err());
        cache.invalidate([("t", "2026-11")]);
        assert!(cache.get("t", "2026-10", 31, None).is_ok());
        cache.invalidate([("t", "2026-10")]);
        assert!(cache.get("t", "2026-10", 31, None).is_err());
        let off = DailyCache::new(false);
        off.put(0, "t", "2026-10", 31, None, Arc::new(DailyFolded::default()));
        assert!(off.get("t", "2026-10", 31, None).is_err());
    }
}
