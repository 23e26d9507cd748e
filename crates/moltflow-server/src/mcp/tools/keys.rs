//! MCP tools about API keys: list, create, rotate, revoke.

use moltflow_app::services::principal::ScopeGuard;
use moltflow_app::services::principal::guards::AccountManage;
use serde_json::{Value, json};

use super::{Route, ToolSpec, count, done, no_input, object, text};

pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "list_api_keys",
        description: "The tenant's API keys (members: their own), newest first, with prefix, scopes, creator, last use, expiry and whether each is active. Never the secrets.",
        scope: AccountManage::SCOPE,
        read_only: true,
        destructive: false,
        schema: no_input,
        route: Route::get("/api-keys"),
        run: |call| Box::pin(async move { done(call.app.api_keys().list(&call.proof::<AccountManage>()?).await) }),
        summary: |keys| {
            let active = keys.as_array().map_or(0, |k| k.iter().filter(|k| k["is_active"] == json!(true)).count());
            format!("{} key(s), {active} active", count(keys))
        },
    },
    ToolSpec {
        name: "create_api_key",
        description: "Create an API key with the given scopes (only scopes this key holds itself). The secret (`raw_key`) is in this result only: store it now, it is never shown again.",
        scope: AccountManage::SCOPE,
        read_only: false,
        destructive: false,
        schema: || {
            object(
                json!({
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "scopes": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"type": "string"}, "description": "e.g. [\"usage:read\"]; `*` for all"},
                    "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650, "description": "Omit for a key that never expires"},
                }),
                &["name", "scopes"],
            )
        },
        route: Route::post("/api-keys").body(&["name", "scopes", "expires_in_days"]),
        run: |mut call| {
            Box::pin(async move {
                let req = call.body()?;
                done(call.app.api_keys().create(&call.proof::<AccountManage>()?, req, call.origin).await)
            })
        },
        summary: |k| {
            format!(
                "Created key {} ({}); the secret in raw_key is shown only once",
                text(&k["name"]),
                text(&k["key_prefix"])
            )
        },
    },
    ToolSpec {
        name: "rotate_api_key",
        description: "Give a key you created a new secret; the old one keeps working for the grace period only. The new secret is in this result only.",
        scope: AccountManage::SCOPE,
        read_only: false,
        destructive: true,
        schema: || {
            object(
                json!({
                    "id": {"type": "string", "description": "The key's id"},
                    "grace_period_minutes": {"type": "integer", "minimum": 0, "maximum": 1440, "description": "Default 0: the old secret stops at once"},
                }),
                &["id"],
            )
        },
        route: Route::post("/api-keys/{id}/rotate").body(&["grace_period_minutes"]),
        run: |mut call| {
            Box::pin(async move {
                let id = call.id()?;
                let req = call.body()?;
                done(call.app.api_keys().rotate(&call.proof::<AccountManage>()?, &id, req, call.origin).await)
            })
        },
        summary: |k| {
            format!(
                "Rotated key {} ({}); the new secret in raw_key is shown only once",
                text(&k["name"]),
                text(&k["key_prefix"])
            )
        },
    },
    ToolSpec {
        name: "revoke_api_key",
        description: "Revoke an API key at once; services using it stop working. Revoking twice is harmless.",
        scope: AccountManage::SCOPE,
        read_only: false,
        destructive: true,
        schema: || object(json!({"id": {"type": "string", "description": "The key's id"}}), &["id"]),
        route: Route::delete("/api-keys/{id}"),
        run: |call| {
            Box::pin(async move {
                let id = call.id()?;
                let revoked = call.app.api_keys().revoke(&call.proof::<AccountManage>()?, &id, call.origin).await;
                // The route answers `204`, no body.
                done(revoked.map(|()| Value::Null))
            })
        },
        summary: |_| "Revoked".to_owned(),
    },
];
