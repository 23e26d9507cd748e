//! The MCP tools: what an agent sees (name, description, JSON schema), the scope each needs, the
//! API route it calls, and the one-line summary put beside the API's JSON in its result.

use moltflow_core::Scope;
use serde_json::{Map, Value, json};

/// A call of the admin API, relative to its base (`/usage/current?…`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// The scope a key needs to see and call the tool (checked again by the route itself).
    pub scope: &'static str,
    pub read_only: bool,
    pub destructive: bool,
    schema: fn() -> Value,
    call: fn(&Map<String, Value>) -> Result<ApiCall, String>,
    summary: fn(&Value) -> String,
}

impl ToolSpec {
    pub fn scope(&self) -> Scope {
        // Every name is checked against the catalogue by a unit test below.
        Scope::parse(self.scope).unwrap_or_else(|| panic!("tool {} names unknown scope {}", self.name, self.scope))
    }

    pub fn input_schema(&self) -> Value {
        (self.schema)()
    }

    pub fn api_call(&self, args: &Map<String, Value>) -> Result<ApiCall, String> {
        (self.call)(args)
    }

    pub fn summarize(&self, body: &Value) -> String {
        (self.summary)(body)
    }
}

pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn no_input() -> Value {
    object(json!({}), &[])
}

fn get(path: &str) -> ApiCall {
    ApiCall { method: "GET", path: path.to_owned(), body: None }
}

/// The arguments a body-taking tool passes on as they are: the API validates them and answers
/// `422` naming the field, which the agent sees.
fn body_of(args: &Map<String, Value>, fields: &[&str]) -> Value {
    Value::Object(
        args.iter().filter(|(k, _)| fields.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
    )
}

fn id_arg(args: &Map<String, Value>) -> Result<String, String> {
    match args.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(url::form_urlencoded::byte_serialize(id.as_bytes()).collect()),
        _ => Err("`id` (the API key's id) is required".to_owned()),
    }
}

fn query(args: &Map<String, Value>, names: &[&str]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for name in names {
        match args.get(*name) {
            Some(Value::String(s)) => {
                q.append_pair(name, s);
                any = true;
            }
            Some(Value::Number(n)) => {
                q.append_pair(name, &n.to_string());
                any = true;
            }
            _ => {}
        }
    }
    if any { format!("?{}", q.finish()) } else { String::new() }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "none".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn count(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn metric_line(name: &str, m: &Value) -> String {
    match &m["limit"] {
        Value::Null => format!("{name} {} (unlimited)", text(&m["used"])),
        l if l.as_u64() == Some(0) => format!("{name} not included"),
        l => format!("{name} {}/{}", text(&m["used"]), text(l)),
    }
}

pub static TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "whoami",
        description: "Who this API key acts for: the user, role, tenant and the key's effective scopes.",
        scope: "account:read",
        read_only: true,
        destructive: false,
        schema: no_input,
        call: |_| Ok(get("/auth/me")),
        summary: |me| {
            format!(
                "{} ({}) in tenant {}; scopes: {}",
                text(&me["email"]),
                text(&me["role"]),
                text(&me["tenant_id"]),
                me["auth"]["scopes"]
                    .as_array()
                    .map(|s| s.iter().map(text).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default()
            )
        },
    },
    ToolSpec {
        name: "get_subscription",
        description: "The tenant's current plan, subscription status, billing cycle, period end, plan limits and usage against them.",
        scope: "billing:read",
        read_only: true,
        destructive: false,
        schema: no_input,
        call: |_| Ok(get("/billing/subscription")),
        summary: |s| {
            format!(
                "Plan {} ({}), status {}, period ends {}",
                text(&s["display_name"]),
                text(&s["billing_cycle"]),
                text(&s["status"]),
                text(&s["current_period_end"])
            )
        },
    },
    ToolSpec {
        name: "list_plans",
        description: "Every plan with its monthly and yearly price (in cents, USD) and its limits (null = unlimited).",
        scope: "billing:read",
        read_only: true,
        destructive: false,
        schema: no_input,
        call: |_| Ok(get("/billing/plans")),
        summary: |plans| {
            format!(
                "{} plans: {}",
                count(plans),
                plans
                    .as_array()
                    .map(|p| p.iter().map(|p| text(&p["plan_id"])).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            )
        },
    },
    ToolSpec {
        name: "create_checkout_link",
        description: "A checkout link to upgrade the tenant to a paid plan; a person opens it to pay. `free` or the current plan and cycle is a conflict.",
        scope: "billing:manage",
        read_only: false,
        destructive: false,
        schema: || {
            object(
                json!({
                    "plan_id": {"type": "string", "description": "A plan id from list_plans, e.g. `pro`"},
                    "billing_cycle": {"type": "string", "enum": ["monthly", "yearly"]},
                }),
                &["plan_id", "billing_cycle"],
            )
        },
        call: |args| {
            Ok(ApiCall {
                method: "POST",
                path: "/billing/checkout".into(),
                body: Some(body_of(args, &["plan_id", "billing_cycle"])),
            })
        },
        summary: |r| format!("Checkout link: {}", text(&r["checkout_url"])),
    },
    ToolSpec {
        name: "create_portal_link",
        description: "A link to the billing portal where a person manages invoices and the payment method.",
        scope: "billing:manage",
        read_only: false,
        destructive: false,
        schema: no_input,
        call: |_| Ok(ApiCall { method: "POST", path: "/billing/portal".into(), body: None }),
        summary: |r| format!("Billing portal: {}", text(&r["portal_url"])),
    },
    ToolSpec {
        name: "get_usage_current",
        description: "This month's usage per metric (messages, ai_replies, sessions, groups, labels) against the plan's limits, with what remains.",
        scope: "usage:read",
        read_only: true,
        destructive: false,
        schema: no_input,
        call: |_| Ok(get("/usage/current")),
        summary: |u| {
            let m = &u["metrics"];
            let parts: Vec<String> = ["messages", "ai_replies", "sessions", "groups", "labels"]
                .iter()
                .map(|k| metric_line(k, &m[k]))
                .collect();
            format!("Plan {}: {}", text(&u["plan_id"]), parts.join(", "))
        },
    },
    ToolSpec {
        name: "get_usage_daily",
        description: "Messages and AI replies per day of a month (every day up to today, zero-filled), with a per-WhatsApp-session breakdown.",
        scope: "usage:read",
        read_only: true,
        destructive: false,
        schema: || {
            object(
                json!({
                    "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$", "description": "`YYYY-MM`; default: this month (UTC)"},
                    "session_id": {"type": "string", "description": "Only this WhatsApp session"},
                }),
                &[],
            )
        },
        call: |args| Ok(get(&format!("/usage/daily{}", query(args, &["month", "session_id"])))),
        summary: |d| {
            let days = d["days"].as_array().cloned().unwrap_or_default();
            let total: u64 = days.iter().map(|day| day["messages"].as_u64().unwrap_or(0)).sum();
            format!("{}: {total} messages over {} day(s)", text(&d["month"]), days.len())
        },
    },
    ToolSpec {
        name: "get_usage_history",
        description: "Messages and AI replies per month, newest first.",
        scope: "usage:read",
        read_only: true,
        destructive: false,
        schema: || {
            object(
                json!({
                    "months": {"type": "integer", "minimum": 1, "maximum": 36, "description": "How many months (default 12)"},
                }),
                &[],
            )
        },
        call: |args| Ok(get(&format!("/usage/history{}", query(args, &["months"])))),
        summary: |h| match h.as_array().and_then(|m| m.first()) {
            Some(m) => format!(
                "{} month(s); {}: {} messages, {} AI replies",
                count(h),
                text(&m["month"]),
                text(&m["messages"]),
                text(&m["ai_replies"])
            ),
            None => "No months".to_owned(),
        },
    },
    ToolSpec {
        name: "list_api_keys",
        description: "The tenant's API keys (members: their own), newest first, with prefix, scopes, creator, last use, expiry and whether each is active. Never the secrets.",
        scope: "account:manage",
        read_only: true,
        destructive: false,
        schema: no_input,
        call: |_| Ok(get("/api-keys")),
        summary: |keys| {
            let active = keys.as_array().map_or(0, |k| k.iter().filter(|k| k["is_active"] == json!(true)).count());
            format!("{} key(s), {active} active", count(keys))
        },
    },
    ToolSpec {
        name: "create_api_key",
        description: "Create an API key with the given scopes (only scopes this key holds itself). The secret (`raw_key`) is in this result only: store it now, it is never shown again.",
        scope: "account:manage",
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
        call: |args| {
            Ok(ApiCall {
                method: "POST",
                path: "/api-keys".into(),
                body: Some(body_of(args, &["name", "scopes", "expires_in_days"])),
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
        scope: "account:manage",
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
        call: |args| {
            Ok(ApiCall {
                method: "POST",
                path: format!("/api-keys/{}/rotate", id_arg(args)?),
                body: Some(body_of(args, &["grace_period_minutes"])),
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
        scope: "account:manage",
        read_only: false,
        destructive: true,
        schema: || object(json!({"id": {"type": "string", "description": "The key's id"}}), &["id"]),
        call: |args| Ok(ApiCall { method: "DELETE", path: format!("/api-keys/{}", id_arg(args)?), body: None }),
        summary: |_| "Revoked".to_owned(),
    },
    ToolSpec {
        name: "get_tenant_settings",
        description: "The tenant's settings: allowed sender numbers (E.164), whether sends need approval, AI consent (GDPR) and chat-history access.",
        scope: "settings:read",
        read_only: true,
        destructive: false,
        schema: no_input,
        call: |_| Ok(get("/tenant/settings")),
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
        scope: "settings:manage",
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
        call: |args| {
            Ok(ApiCall {
                method: "PATCH",
                path: "/tenant/settings".into(),
                body: Some(body_of(
                    args,
                    &["allowed_numbers", "require_approval", "ai_consent_enabled", "chat_history_access_enabled"],
                )),
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
        scope: "members:read",
        read_only: true,
        destructive: false,
        schema: no_input,
        call: |_| Ok(get("/tenant/members")),
        summary: |m| format!("{} member(s)", count(m)),
    },
    ToolSpec {
        name: "list_audit_logs",
        description: "The audit log, newest first: logins, key and settings changes, plan changes, member changes. Pass next_cursor as cursor for the next page.",
        scope: "audit:read",
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
        call: |args| Ok(get(&format!("/audit-logs{}", query(args, &["limit", "cursor", "action"])))),
        summary: |p| {
            format!(
                "{} entr(ies){}",
                count(&p["items"]),
                if p["next_cursor"].is_null() { "" } else { "; more with next_cursor" }
            )
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_names_a_catalogued_scope_and_an_object_schema() {
        for tool in TOOLS {
            assert!(Scope::parse(tool.scope).is_some(), "{}", tool.name);
            assert_eq!(tool.input_schema()["type"], "object", "{}", tool.name);
        }
    }

    #[test]
    fn arguments_become_the_api_call() {
        let args: Map<String, Value> =
            serde_json::from_value(json!({"id": "a/b", "grace_period_minutes": 5, "other": 1})).unwrap();
        let call = find("rotate_api_key").unwrap().api_call(&args).unwrap();
        assert_eq!(call.path, "/api-keys/a%2Fb/rotate", "an id cannot change the route");
        assert_eq!(call.body, Some(json!({"grace_period_minutes": 5})));
        let daily: Map<String, Value> = serde_json::from_value(json!({"month": "2026-11"})).unwrap();
        assert_eq!(find("get_usage_daily").unwrap().api_call(&daily).unwrap().path, "/usage/daily?month=2026-11");
        assert!(find("revoke_api_key").unwrap().api_call(&Map::new()).is_err());
    }
}
