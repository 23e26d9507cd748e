//! The MCP tools: what an agent sees (name, description, JSON schema), the scope each needs, the
//! API route it calls, and the one-line summary put beside the API's JSON in its result. The
//! specs are grouped by what they touch, one module each; [`all`] lists them in that order.

mod account;
mod billing;
mod keys;
mod tenant;
mod usage;

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

/// The tool groups, in the order agents see them.
static GROUPS: &[&[ToolSpec]] = &[account::TOOLS, billing::TOOLS, usage::TOOLS, keys::TOOLS, tenant::TOOLS];

/// Every tool, in the order agents see them.
pub fn all() -> impl Iterator<Item = &'static ToolSpec> {
    GROUPS.iter().flat_map(|group| group.iter())
}

pub fn find(name: &str) -> Option<&'static ToolSpec> {
    all().find(|t| t.name == name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_names_a_catalogued_scope_and_an_object_schema() {
        for tool in all() {
            assert!(Scope::parse(tool.scope).is_some(), "{}", tool.name);
            assert_eq!(tool.input_schema()["type"], "object", "{}", tool.name);
        }
    }

    #[test]
    fn tool_names_are_unique_and_listed_in_group_order() {
        let names: Vec<&str> = all().map(|t| t.name).collect();
        assert_eq!(names.len(), 16);
        assert_eq!((names[0], names[15]), ("whoami", "list_audit_logs"));
        let unique: std::collections::HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len());
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
