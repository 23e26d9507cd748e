//! API keys: create, list, read, revoke, rotate (API.md §5). Owners and admins list, read and
//! revoke every key of the tenant; members only their own, and other keys are `404` to them. Only
//! a key's creator rotates it: a rotation is the one way to another key's secret.

use moltflow_core::api_key::{display_prefix, new_raw_key};
use moltflow_core::clock::{DAY_MS, MINUTE_MS, now_ms, rfc3339};
use moltflow_core::ids::{is_uuid, new_id};
use moltflow_core::scope::ScopeSet;
use moltflow_core::secret::sha256_hex;
use moltflow_core::{Role, Scope};
use moltflow_store::api_keys::{
    ApiKeyRow, find_api_key, insert_api_key, list_api_keys, revoke_api_key, rotate_api_key,
};
use moltflow_types::{ApiKey, ApiKeyWithSecret, CreateApiKeyRequest, RotateApiKeyRequest};
use serde_json::json;

use crate::auth::revocation::Invalidation;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Checks, ClientMeta, check_name};
use crate::principal::Principal;
use crate::services::audit::{self, Actor, Entry};
use crate::state::App;

pub const MAX_EXPIRY_DAYS: i64 = 3650;
pub const MAX_GRACE_MINUTES: i64 = 1440;

pub fn to_dto(row: &ApiKeyRow) -> ApiKey {
    let now = now_ms();
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

fn key_not_found() -> ApiError {
    ApiError::missing("API key")
}

/// Members see only the keys they created.
fn visible_creator(p: &Principal) -> Option<&str> {
    (p.role == Role::Member).then_some(p.user.id.as_str())
}

fn actor(p: &Principal) -> Actor {
    let (kind, id) = p.actor();
    Actor { kind, id: Some(id) }
}

pub async fn list(app: &App, p: &Principal) -> ApiResult<Vec<ApiKey>> {
    let mut conn = app.store.conn().await?;
    let rows = list_api_keys(&mut conn, p.tenant_id(), visible_creator(p)).await?;
    Ok(rows.iter().map(to_dto).collect())
}

async fn find_visible(app: &App, p: &Principal, id: &str) -> ApiResult<ApiKeyRow> {
    if !is_uuid(id) {
        return Err(key_not_found());
    }
    let mut conn = app.store.conn().await?;
    let row = find_api_key(&mut conn, p.tenant_id(), id).await?.ok_or_else(key_not_found)?;
    match visible_creator(p) {
        Some(me) if row.created_by != me => Err(key_not_found()),
        _ => Ok(row),
    }
}

pub async fn get(app: &App, p: &Principal, id: &str) -> ApiResult<ApiKey> {
    Ok(to_dto(&find_visible(app, p, id).await?))
}

/// Checked create input: the scope names as given (deduplicated order kept) and their set.
struct NewKey {
    name: String,
    names: Vec<String>,
    set: ScopeSet,
    expires_at: Option<i64>,
}

fn validate_create(req: CreateApiKeyRequest, now: i64) -> ApiResult<NewKey> {
    let mut checks = Checks::default();
    let name = check_name(&mut checks, &["body", "name"], &req.name, 100);
    if req.scopes.is_empty() {
        checks.fail(&["body", "scopes"], "List should have at least 1 item", "too_short");
    }
    let mut set = ScopeSet::empty();
    let mut names: Vec<String> = Vec::with_capacity(req.scopes.len());
    for (i, raw) in req.scopes.iter().enumerate() {
        let loc = vec![json!("body"), json!("scopes"), json!(i)];
        if names.iter().any(|n| n == raw) {
            checks.fail_at(loc, format!("Duplicate scope {raw:?}"), "value_error");
            continue;
        }
        if raw == "*" {
            set = ScopeSet::all();
        } else if let Some(scope) = Scope::parse(raw) {
            set = set.union(ScopeSet::from_scopes([scope]));
        } else {
            let shown: String = raw.chars().take(64).collect();
            checks.fail_at(loc, format!("Unknown scope {shown:?}; see GET /api-keys/scopes"), "value_error");
            continue;
        }
        names.push(raw.clone());
    }
    let expires_at = match req.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => Some(now + d * DAY_MS),
        Some(d) => {
            let kind = if d < 1 { "greater_than_equal" } else { "less_than_equal" };
            checks.fail(&["body", "expires_in_days"], format!("Input should be between 1 and {MAX_EXPIRY_DAYS}"), kind);
            None
        }
    };
    checks.finish()?;
    Ok(NewKey { name, names, set, expires_at })
}

pub async fn create(
    app: &App,
    p: &Principal,
    req: CreateApiKeyRequest,
    meta: &ClientMeta,
) -> ApiResult<ApiKeyWithSecret> {
    let now = now_ms();
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
    let mut tx = app.store.begin().await?;
    insert_api_key(&mut tx, &row).await?;
    audit::record(
        &mut tx,
        Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "api_key.created",
            target: Some(row.id.clone()),
            meta,
            details: json!({"name": row.name, "key_prefix": row.key_prefix, "scopes": new.names, "expires_at": row.expires_at.map(rfc3339)}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ApiKeyWithSecret { key: to_dto(&row), raw_key })
}

/// Idempotent: revoking a revoked key answers the same and records nothing new.
pub async fn revoke(app: &App, p: &Principal, id: &str, meta: &ClientMeta) -> ApiResult<()> {
    let row = find_visible(app, p, id).await?;
    let change =
        Invalidation::default().dead_keys(std::iter::once(row.key_hash.clone()).chain(row.previous_key_hash.clone()));
    let mut tx = app.store.begin().await?;
    if revoke_api_key(&mut tx, &row.id, now_ms()).await? {
        change.announce(&mut tx, app).await?;
        audit::record(
            &mut tx,
            Entry {
                tenant_id: p.tenant_id(),
                actor: actor(p),
                action: "api_key.revoked",
                target: Some(row.id.clone()),
                meta,
                details: json!({"name": row.name, "key_prefix": row.key_prefix}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    change.apply(&app.auth_cache).await;
    Ok(())
}

/// A rotation hands out the key's new secret, so only the key's creator may rotate it (an owner
/// or admin who could would take over the creator's key, and through it the creator's role); a
/// key principal of that creator only keys that hold nothing it does not hold itself. Other users'
/// keys stay readable and revocable by owners and admins (`find_visible`), never rotatable.
fn authorize_rotation(p: &Principal, row: &ApiKeyRow) -> ApiResult<()> {
    if row.created_by != p.user.id {
        return Err(ApiError::forbidden(
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

pub async fn rotate(
    app: &App,
    p: &Principal,
    id: &str,
    req: RotateApiKeyRequest,
    meta: &ClientMeta,
) -> ApiResult<ApiKeyWithSecret> {
    let grace = req.grace_period_minutes.unwrap_or(0);
    if !(0..=MAX_GRACE_MINUTES).contains(&grace) {
        let kind = if grace < 0 { "greater_than_equal" } else { "less_than_equal" };
        return Err(ApiError::invalid(
            &["body", "grace_period_minutes"],
            format!("Input should be between 0 and {MAX_GRACE_MINUTES}"),
            kind,
        ));
    }
    let row = find_visible(app, p, id).await?;
    authorize_rotation(p, &row)?;
    let now = now_ms();
    if row.revoked_at.is_some() {
        return Err(ApiError::conflict("api_key_revoked", "A revoked key cannot be rotated"));
    }
    if row.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::conflict("api_key_expired", "An expired key cannot be rotated; create a new one"));
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
    let mut tx = app.store.begin().await?;
    if !rotate_api_key(&mut tx, &row.id, &new_hash, &new_prefix, previous, previous_until).await? {
        return Err(ApiError::conflict("api_key_revoked", "A revoked key cannot be rotated"));
    }
    audit::record(
        &mut tx,
        Entry {
            tenant_id: p.tenant_id(),
            actor: actor(p),
            action: "api_key.rotated",
            target: Some(row.id.clone()),
            meta,
            details: json!({"grace_period_minutes": grace, "key_prefix": new_prefix, "previous_key_prefix": row.key_prefix}),
        },
    )
    .await?;
    change.announce(&mut tx, app).await?;
    tx.commit().await?;
    change.apply(&app.auth_cache).await;
    let rotated = ApiKeyRow {
        key_hash: new_hash,
        key_prefix: new_prefix,
        previous_key_hash: previous.map(str::to_owned),
        previous_expires_at: previous_until,
        ..row
    };
    Ok(ApiKeyWithSecret { key: to_dto(&rotated), raw_key })
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
