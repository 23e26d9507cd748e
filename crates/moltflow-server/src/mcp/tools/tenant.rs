//! MCP tools about tenant settings, members and the audit log.

use moltflow_app::services::principal::ScopeGuard;
use moltflow_app::services::principal::guards::{AuditRead, MembersRead, SettingsManage, SettingsRead};
use serde_json::json;

use super::{Route, ToolSpec, count, done, no_input, object, text};

pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "get_tenant_settings",
        description: "The tenant's settings: allowed sender numbers (E.164), whether sends need approval, AI consent (GDPR) and chat-history access.",
        scope: SettingsRead::SCOPE,
        read_only: true,
        destructive: false,
        schema: no_input,
        route: Route::get("/tenant/settings"),
        run: |call| Box::pin(async move { done(call.app.settings().get(&call.proof::<SettingsRead>()?).await) }),
        summary: |s| {
            format!(
                "{} allowed number(s), approval {}, AI consent {}",
                count(&s["allowed_numbers"]),
                text(&s["require_approval"]),
                text(&s["ai_consent_enabled"])
            )
        },
    },
    ToolSpec {
        name: "update_tenant_settings",
        description: "Change some tenant settings; only the fields given change. Setting ai_consent_enabled records a GDPR consent entry (who, when, IP, user agent).",
        scope: SettingsManage::SCOPE,
        read_only: false,
        destructive: false,
        schema: || {
            object(
                json!({
                    "allowed_numbers": {"type": "array", "maxItems": 500, "items": {"type": "string", "pattern": "^\\+[0-9]{8,15}$"}, "description": "Replaces the list; E.164"},
                    "require_approval": {"type": "boolean"},
                    "ai_consent_enabled": {"type": "boolean"},
                    "chat_history_access_enabled": {"type": "boolean"},
                }),
                &[],
            )
        },
        route: Route::patch("/tenant/settings").body(&[
            "allowed_numbers",
            "require_approval",
            "ai_consent_enabled",
            "chat_history_access_enabled",
        ]),
        run: |mut call| {
            Box::pin(async move {
                let patch = call.body()?;
                done(call.app.settings().update(&call.proof::<SettingsManage>()?, patch, call.origin).await)
            })
        },
        summary: |s| {
            format!(
                "Settings saved: {} allowed number(s), approval {}, AI consent {}",
                count(&s["allowed_numbers"]),
                text(&s["require_approval"]),
                text(&s["ai_consent_enabled"])
            )
        },
    },
    ToolSpec {
        name: "list_members",
        description: "The tenant's members with their roles (owner, admin, member) and whether their email is verified.",
        scope: MembersRead::SCOPE,
        read_only: true,
        destructive: false,
        schema: no_input,
        route: Route::get("/tenant/members"),
        run: |call| Box::pin(async move { done(call.app.members().list(&call.proof::<MembersRead>()?).await) }),
        summary: |m| format!("{} member(s)", count(m)),
    },
    ToolSpec {
        name: "list_audit_logs",
        description: "The audit log, newest first: logins, key and settings changes, plan changes, member changes. Pass next_cursor as cursor for the next page.",
        scope: AuditRead::SCOPE,
        read_only: true,
        destructive: false,
        schema: || {
            object(
                json!({
                    "limit": {"type": "integer", "minimum": 1, "maximum": 200, "description": "Default 50"},
                    "cursor": {"type": "string"},
                    "action": {"type": "string", "description": "Only this action, e.g. `api_key.created`"},
                }),
                &[],
            )
        },
        route: Route::get("/audit-logs").query(&["limit", "cursor", "action"]),
        run: |call| {
            Box::pin(async move {
                let query = call.query();
                let limit = query.int_within("limit", 50, 1, 200)?;
                let proof = call.proof::<AuditRead>()?;
                done(call.app.audit_log().list(&proof, limit, query.get("cursor"), query.get("action")).await)
            })
        },
        summary: |p| {
            format!(
                "{} entr(ies){}",
                count(&p["items"]),
                if p["next_cursor"].is_null() { "" } else { "; more with next_cursor" }
            )
        },
    },
];
