//! API keys: create, list, read, revoke, rotate (API.md §5). Owners and admins list, read and
//! revoke every key of the tenant; members only their own, and other keys are `404` to them. Only
//! a key's creator rotates it: a rotation is the one way to another key's secret.

use moltflow_core::api_key::{display_prefix, new_raw_key};
use moltflow_core::clock::{Clock, DAY_MS, MINUTE_MS, rfc3339};
use moltflow_core::ids::{is_uuid, new_id};
use moltflow_core::scope::ScopeSet;
use moltflow_core::secret::sha256_hex;
use moltflow_core::{Role, Scope};
use moltflow_store::api_keys::{
    ApiKeyRow, KeyPageQuery, find_api_key, insert_api_key, list_api_keys, page_api_keys, revoke_api_key, rotate_api_key,
};
use moltflow_types::{ApiKey, ApiKeyWithSecret, CreateApiKeyRequest, RotateApiKeyRequest};
use serde_json::json;

use moltflow_store::Store;

use crate::auth::cache::AuthCache;
use crate::auth::revocation::Invalidation;
use crate::services::audit::{self, Actor, Entry};
use crate::services::cursor;
use crate::services::failure::{Failure, Issues, Outcome, check_name};
use crate::services::origin::Origin;
use crate::services::principal::guards::AccountManage;
use crate::services::principal::{Authorized, Principal};
use crate::services::standing::{current_caller, require_verified};

/// What the API-key use cases work with.
pub struct ApiKeys<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    /// Revocations and rotations evict the key's cached state at once.
    pub auth_cache: &'a AuthCache,
}

pub const MAX_EXPIRY_DAYS: i64 = 3650;
pub const MAX_GRACE_MINUTES: i64 = 1440;

/// A key as clients see it; `is_active` as of `now`.
pub fn to_dto(row: &ApiKeyRow, now: i64) -> ApiKey {
    ApiKey {
        id: row.id.clone(),
        name: row.name.clone(),
        key_prefix: row.key_prefix.clone(),
        scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
        expires_at: row.expires_at.map(rfc3339),
        created_at: rfc3339(row.created_at),
        last_used_at: row.last_used_at.map(rfc3339),
        is_active: row.revoked_at.is_none() && row.expires_at.is_none_or(|at| at > now),
        revoked_at: row.revoked_at.map(rfc3339),
        created_by: row.created_by.clone(),
    }
}

fn key_not_found() -> Failure {
    Failure::NotFound("API key")
}

/// Which keys a page of the list holds (the dashboard's filter).
pub use moltflow_store::api_keys::KeyFilter;

/// A page of keys asked for: at most `limit` (the caller bounds it), after the page that ended
/// at `cursor`, whose name or prefix contains `search` (ignoring case), in `state`.
#[derive(Clone, Debug, Default)]
pub struct KeyPageRequest<'a> {
    pub search: Option<&'a str>,
    pub state: KeyFilter,
    pub cursor: Option<&'a str>,
    pub limit: i64,
}

/// A page of keys, newest first; `next_cursor` asks for the page after it.
#[derive(Clone, Debug)]
pub struct KeyPage {
    pub items: Vec<ApiKey>,
    pub next_cursor: Option<String>,
}

pub const MAX_SEARCH_CHARS: usize = 100;

/// The position in a page cursor is its last key's `created_at.id`.
fn position(row: &ApiKeyRow) -> String {
    format!("{}.{}", row.created_at, row.id)
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let text = cursor::decode(c)?;
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, id.to_owned())).filter(|(_, id)| is_uuid(id))
}

/// `search` as a `LIKE` pattern: a substring, lower-cased, its wildcards taken literally.
fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for ch in search.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// Members see only the keys they created.
fn visible_creator(p: &Principal) -> Option<&str> {
    (p.role == Role::Member).then_some(p.user.id.as_str())
}

fn actor(p: &Principal) -> Actor {
    let (kind, id) = p.actor();
    Actor { kind, id: Some(id) }
}

impl ApiKeys<'_> {
    /// The keys the caller may see, newest first, revoked ones included.
    pub async fn list(&self, p: &Authorized<AccountManage>) -> Outcome<Vec<ApiKey>> {
        let now = self.clock.now_ms();
        let mut conn = self.store.conn().await?;
        let rows = list_api_keys(&mut conn, p.tenant_id(), visible_creator(p)).await?;
        Ok(rows.iter().map(|row| to_dto(row, now)).collect())
    }

    /// A page of the keys the caller may see, newest first. Issues are at `cursor` and `search`.
    pub async fn page(&self, p: &Authorized<AccountManage>, req: KeyPageRequest<'_>) -> Outcome<KeyPage> {
        let before = match req.cursor.filter(|c| !c.trim().is_empty()) {
            None => None,
            Some(raw) => Some(decode_cursor(raw).ok_or_else(|| cursor::invalid("use the link to the next page"))?),
        };
        let search = req.search.map(str::trim).filter(|s| !s.is_empty());
        if search.is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS) {
            return Err(Failure::invalid(
                "search",
                format!("String should have at most {MAX_SEARCH_CHARS} characters"),
                "string_too_long",
            ));
        }
        let pattern = search.map(like_pattern);
        let now = self.clock.now_ms();
        let limit = req.limit.max(1);
        let query = KeyPageQuery {
            created_by: visible_creator(p),
            before: before.as_ref().map(|(at, id)| (*at, id.as_str())),
            pattern: pattern.as_deref(),
            state: req.state,
            now,
            limit: limit + 1,
        };
        let mut conn = self.store.conn().await?;
        let mut rows = page_api_keys(&mut conn, p.tenant_id(), &query).await?;
        let next_cursor = cursor::cut(&mut rows, limit, position);
        Ok(KeyPage { items: rows.iter().map(|row| to_dto(row, now)).collect(), next_cursor })
    }

    /// Another tenant's key, or for a member another user's, is not found.
    async fn find_visible(&self, p: &Principal, id: &str) -> Outcome<ApiKeyRow> {
        if !is_uuid(id) {
            return Err(key_not_found());
        }
        let mut conn = self.store.conn().await?;
        let row = find_api_key(&mut conn, p.tenant_id(), id).await?.ok_or_else(key_not_found)?;
        match visible_creator(p) {
            Some(me) if row.created_by != me => Err(key_not_found()),
            _ => Ok(row),
        }
    }

    pub async fn get(&self, p: &Authorized<AccountManage>, id: &str) -> Outcome<ApiKey> {
        Ok(to_dto(&self.find_visible(p, id).await?, self.clock.now_ms()))
    }

    pub async fn create(
        &self,
        p: &Authorized<AccountManage>,
        req: CreateApiKeyRequest,
        origin: &Origin,
    ) -> Outcome<ApiKeyWithSecret> {
        let now = self.clock.now_ms();
        let new = validate_create(req, now)?;
        p.require_within(new.set, "You cannot grant scopes you do not hold")?;
        let raw_key = new_raw_key();
        let row = ApiKeyRow {
            id: new_id(),
            tenant_id: p.tenant_id().to_owned(),
            created_by: p.user.id.clone(),
            name: new.name,
            key_prefix: display_prefix(&raw_key),
            key_hash: sha256_hex(&raw_key),
            previous_key_hash: None,
            previous_expires_at: None,
            scopes: new.names.join(" "),
            expires_at: new.expires_at,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        let mut tx = self.store.begin().await?;
        let creator = current_caller(&mut tx, p, now).await?;
        if new.set.contains(Scope::MEMBERS_MANAGE) || new.set.contains(Scope::BILLING_MANAGE) {
            require_verified(&creator, "creating a key that manages members or billing")?;
        }
        insert_api_key(&mut tx, &row).await?;
        let details = json!({"name": row.name, "key_prefix": row.key_prefix, "scopes": new.names, "expires_at": row.expires_at.map(rfc3339)});
        audit::record_at(&mut tx, entry(p, "api_key.created", &row.id, origin, details), now).await?;
        tx.commit().await?;
        Ok(ApiKeyWithSecret { key: to_dto(&row, now), raw_key })
    }

    /// Idempotent: revoking a revoked key answers the same and records nothing new.
    pub async fn revoke(&self, p: &Authorized<AccountManage>, id: &str, origin: &Origin) -> Outcome<()> {
        let now = self.clock.now_ms();
        let row = self.find_visible(p, id).await?;
        let change = Invalidation::default()
            .dead_keys(std::iter::once(row.key_hash.clone()).chain(row.previous_key_hash.clone()));
        let mut tx = self.store.begin().await?;
        if revoke_api_key(&mut tx, &row.id, now).await? {
            let details = json!({"name": row.name, "key_prefix": row.key_prefix});
            audit::record_at(&mut tx, entry(p, "api_key.revoked", &row.id, origin, details), now).await?;
            change.announce(&mut tx, self.store, self.auth_cache).await?;
        }
        tx.commit().await?;
        change.apply(self.auth_cache).await;
        Ok(())
    }

    /// A new secret for the key; the old one keeps working for `grace_period_minutes`.
    pub async fn rotate(
        &self,
        p: &Authorized<AccountManage>,
        id: &str,
        req: RotateApiKeyRequest,
        origin: &Origin,
    ) -> Outcome<ApiKeyWithSecret> {
        let now = self.clock.now_ms();
        let grace = req.grace_period_minutes.unwrap_or(0);
        if !(0..=MAX_GRACE_MINUTES).contains(&grace) {
            let kind = if grace < 0 { "greater_than_equal" } else { "less_than_equal" };
            let message = format!("Input should be between 0 and {MAX_GRACE_MINUTES}");
            return Err(Failure::invalid("grace_period_minutes", message, kind));
        }
        let row = self.find_visible(p, id).await?;
        authorize_rotation(p, &row)?;
        if row.revoked_at.is_some() {
            return Err(Failure::conflict("api_key_revoked", "A revoked key cannot be rotated"));
        }
        if row.expires_at.is_some_and(|at| at <= now) {
            return Err(Failure::conflict("api_key_expired", "An expired key cannot be rotated; create a new one"));
        }
        let raw_key = new_raw_key();
        let new_hash = sha256_hex(&raw_key);
        let new_prefix = display_prefix(&raw_key);
        let (previous, previous_until) =
            if grace > 0 { (Some(row.key_hash.as_str()), Some(now + grace * MINUTE_MS)) } else { (None, None) };
        // The secret of an earlier rotation's grace period ends now; the current one ends now or
        // after the new grace period.
        let dead: Vec<String> =
            row.previous_key_hash.iter().cloned().chain((grace == 0).then(|| row.key_hash.clone())).collect();
        let mut change = Invalidation::default().dead_keys(dead);
        if grace > 0 {
            change = change.changed_key(&row.key_hash);
        }
        let mut tx = self.store.begin().await?;
        if !rotate_api_key(&mut tx, &row.id, &new_hash, &new_prefix, previous, previous_until).await? {
            return Err(Failure::conflict("api_key_revoked", "A revoked key cannot be rotated"));
        }
        let details =
            json!({"grace_period_minutes": grace, "key_prefix": new_prefix, "previous_key_prefix": row.key_prefix});
        audit::record_at(&mut tx, entry(p, "api_key.rotated", &row.id, origin, details), now).await?;
        change.announce(&mut tx, self.store, self.auth_cache).await?;
        tx.commit().await?;
        change.apply(self.auth_cache).await;
        let rotated = ApiKeyRow {
            key_hash: new_hash,
            key_prefix: new_prefix,
            previous_key_hash: previous.map(str::to_owned),
            previous_expires_at: previous_until,
            ..row
        };
        Ok(ApiKeyWithSecret { key: to_dto(&rotated, now), raw_key })
    }
}

fn entry<'a>(
    p: &'a Principal,
    action: &'static str,
    key_id: &str,
    origin: &'a Origin,
    details: serde_json::Value,
) -> Entry<'a> {
    Entry { tenant_id: p.tenant_id(), actor: actor(p), action, target: Some(key_id.to_owned()), meta: origin, details }
}

/// A rotation hands out the key's new secret, so only the key's creator may rotate it (an owner
/// or admin who could would take over the creator's key, and through it the creator's role); a
/// key principal of that creator only keys that hold nothing it does not hold itself. Other users'
/// keys stay readable and revocable by owners and admins (`find_visible`), never rotatable.
fn authorize_rotation(p: &Principal, row: &ApiKeyRow) -> Outcome<()> {
    if row.created_by != p.user.id {
        return Err(Failure::forbidden(
            "not_key_owner",
            "Only the key's creator can rotate it; you may revoke it instead",
        ));
    }
    if p.is_api_key() {
        p.require_within(
            ScopeSet::from_names(row.scopes.split_whitespace()),
            "This key holds scopes the calling key does not",
        )?;
    }
    Ok(())
}

/// Checked create input: the scope names as given (deduplicated order kept) and their set.
struct NewKey {
    name: String,
    names: Vec<String>,
    set: ScopeSet,
    expires_at: Option<i64>,
}

fn validate_create(req: CreateApiKeyRequest, now: i64) -> Outcome<NewKey> {
    let mut issues = Issues::default();
    let name = check_name(&mut issues, "name", &req.name, 100);
    if req.scopes.is_empty() {
        issues.fail("scopes", "List should have at least 1 item", "too_short");
    }
    let mut set = ScopeSet::empty();
    let mut names: Vec<String> = Vec::with_capacity(req.scopes.len());
    for (i, raw) in req.scopes.iter().enumerate() {
        let field = format!("scopes.{i}");
        if names.iter().any(|n| n == raw) {
            issues.fail(&field, format!("Duplicate scope {raw:?}"), "value_error");
            continue;
        }
        if raw == "*" {
            set = ScopeSet::all();
        } else if let Some(scope) = Scope::parse(raw) {
            set = set.union(ScopeSet::from_scopes([scope]));
        } else {
            let shown: String = raw.chars().take(64).collect();
            issues.fail(&field, format!("Unknown scope {shown:?}; see GET /api-keys/scopes"), "value_error");
            continue;
        }
        names.push(raw.clone());
    }
    let expires_at = match req.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => Some(now + d * DAY_MS),
        Some(d) => {
            let kind = if d < 1 { "greater_than_equal" } else { "less_than_equal" };
            issues.fail("expires_in_days", format!("Input should be between 1 and {MAX_EXPIRY_DAYS}"), kind);
            None
        }
    };
    issues.finish()?;
    Ok(NewKey { name, names, set, expires_at })
}

/// Body of `GET /api-keys/scopes`.
pub fn catalogue() -> moltflow_types::ScopeCatalogue {
    use moltflow_core::scope::{CATALOGUE, PRESETS};
    moltflow_types::ScopeCatalogue {
        scopes: CATALOGUE
            .iter()
            .map(|s| {
                let (resource, action) = s.name.split_once(':').unwrap_or((s.name, ""));
                moltflow_types::ScopeEntry {
                    scope: s.name.to_owned(),
                    resource: resource.to_owned(),
                    action: action.to_owned(),
                    description: s.description.to_owned(),
                }
            })
            .collect(),
        presets: PRESETS
            .iter()
            .map(|p| moltflow_types::ScopePreset {
                name: p.name.to_owned(),
                description: p.description.to_owned(),
                scopes: p.scopes.iter().map(|s| (*s).to_owned()).collect(),
            })
            .collect(),
    }
}
