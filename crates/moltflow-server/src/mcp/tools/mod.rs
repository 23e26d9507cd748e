//! The MCP tools, one row each ([`ToolSpec`]): what an agent sees (name, description, JSON
//! schema), the scope it needs, the admin API route it stands for, how `/mcp` runs its use case,
//! and the one-line summary put before the JSON of its answer. Both servers serve this table:
//! `/mcp` calls a row's runner in process, `moltflow mcp` (stdio) sends the row's route to the API
//! over HTTP, and both read the arguments the route names. The rows are grouped by what they
//! touch, one module each; [`all`] lists them in that order.

mod account;
mod billing;
mod keys;
mod tenant;
mod usage;

use std::future::Future;
use std::pin::Pin;

use moltflow_app::App;
use moltflow_app::services::failure::{Failure, Outcome};
use moltflow_app::services::origin::Origin;
use moltflow_app::services::principal::{Authorized, Principal, ScopeGuard};
use moltflow_core::Scope;
use rmcp::ErrorData;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::extract::{QueryParams, shape_issue};

pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// The scope a key needs to see and call the tool; the runner's use case asks for it again.
    pub scope: Scope,
    pub read_only: bool,
    pub destructive: bool,
    schema: fn() -> Value,
    pub route: Route,
    run: Run,
    summary: fn(&Value) -> String,
}

/// A tool's use case, called with the proof it needs (boxed: the rows are one `const` table).
type Run = for<'a> fn(Call<'a>) -> Pin<Box<dyn Future<Output = Ran> + Send + 'a>>;

/// What a runner answers: the use case's JSON, or why there is none.
pub type Ran = Result<Value, Refused>;

pub enum Refused {
    /// The use case refused, or the arguments did not fit its input: a tool error the agent reads.
    Failed(Failure),
    /// The call cannot name what to act on (no `id`): a protocol error, as over stdio.
    Protocol(ErrorData),
}

impl From<Failure> for Refused {
    fn from(failure: Failure) -> Refused {
        Refused::Failed(failure)
    }
}

impl ToolSpec {
    pub fn input_schema(&self) -> Value {
        (self.schema)()
    }

    pub fn summarize(&self, body: &Value) -> String {
        (self.summary)(body)
    }

    /// Runs the tool's use case as `principal`, with the arguments its route reads.
    pub fn run<'a>(
        &'static self,
        app: &'a App,
        principal: &'a Principal,
        origin: &'a Origin,
        args: Map<String, Value>,
    ) -> impl Future<Output = Ran> + Send + 'a {
        (self.run)(Call { app, principal, origin, route: &self.route, args })
    }
}

/// A call of the admin API, relative to its base (`/usage/current?…`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

/// The admin API route a tool stands for, relative to the API's base.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    /// `{id}` stands for the `id` argument.
    pub path: &'static str,
    pub args: Args,
}

/// Where the route takes the tool's arguments (besides `{id}` in its path).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Args {
    None,
    /// These arguments, as given, are the JSON body; the use case validates them.
    Body(&'static [&'static str]),
    /// These arguments are the query string: strings and numbers as written there, anything else
    /// left out.
    Query(&'static [&'static str]),
}

impl Route {
    const fn get(path: &'static str) -> Route {
        Route { method: "GET", path, args: Args::None }
    }

    const fn post(path: &'static str) -> Route {
        Route { method: "POST", path, args: Args::None }
    }

    const fn patch(path: &'static str) -> Route {
        Route { method: "PATCH", path, args: Args::None }
    }

    const fn delete(path: &'static str) -> Route {
        Route { method: "DELETE", path, args: Args::None }
    }

    const fn body(self, fields: &'static [&'static str]) -> Route {
        Route { args: Args::Body(fields), ..self }
    }

    const fn query(self, names: &'static [&'static str]) -> Route {
        Route { args: Args::Query(names), ..self }
    }

    /// Where the route's `422`s locate an input issue: in its query string or in its body.
    pub fn input_place(&self) -> &'static str {
        match self.args {
            Args::Query(_) => "query",
            Args::None | Args::Body(_) => "body",
        }
    }

    /// Every argument the route reads.
    pub fn arguments(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = match self.args {
            Args::None => vec![],
            Args::Body(names) | Args::Query(names) => names.to_vec(),
        };
        if self.path.contains("{id}") {
            names.push("id");
        }
        names
    }

    /// The HTTP call this route is for `args`: what `moltflow mcp` sends.
    pub fn call(&self, args: &Map<String, Value>) -> Result<ApiCall, ErrorData> {
        let mut path = match self.path.split_once("{id}") {
            Some((before, after)) => {
                let id: String = url::form_urlencoded::byte_serialize(id(args)?.as_bytes()).collect();
                format!("{before}{id}{after}")
            }
            None => self.path.to_owned(),
        };
        let body = match self.args {
            Args::None => None,
            Args::Body(fields) => Some(Value::Object(
                args.iter()
                    .filter(|(k, _)| fields.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )),
            Args::Query(names) => {
                let pairs = query_pairs(args, names);
                if !pairs.is_empty() {
                    path.push('?');
                    path.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish());
                }
                None
            }
        };
        Ok(ApiCall { method: self.method, path, body })
    }
}

/// One tool call on `/mcp`: the use cases, the caller, where the call came from (the MCP
/// request's client, on the MCP channel) and the arguments.
pub struct Call<'a> {
    pub app: &'a App,
    pub principal: &'a Principal,
    pub origin: &'a Origin,
    route: &'static Route,
    args: Map<String, Value>,
}

impl Call<'_> {
    /// The caller's proof for `G`, as the use case takes it.
    pub fn proof<G: ScopeGuard>(&self) -> Result<Authorized<G>, Refused> {
        Ok(self.principal.authorize::<G>()?)
    }

    /// The `id` argument (the route's path parameter).
    pub fn id(&self) -> Result<String, Refused> {
        id(&self.args).map(str::to_owned).map_err(Refused::Protocol)
    }

    /// The route's body arguments as `T`, refused as the route refuses its body (the same `422`s).
    pub fn body<T: DeserializeOwned>(&mut self) -> Result<T, Refused> {
        let Args::Body(fields) = self.route.args else {
            return Err(Failure::unexpected(anyhow::anyhow!("{} takes no body", self.route.path)).into());
        };
        let body: Map<String, Value> =
            std::mem::take(&mut self.args).into_iter().filter(|(k, _)| fields.contains(&k.as_str())).collect();
        serde_path_to_error::deserialize(Value::Object(body))
            .map_err(|err| Failure::Invalid(vec![shape_issue(&err)]).into())
    }

    /// The route's query arguments, as the route reads its query string.
    pub fn query(&self) -> QueryParams {
        match self.route.args {
            Args::Query(names) => QueryParams(query_pairs(&self.args, names)),
            Args::None | Args::Body(_) => QueryParams(vec![]),
        }
    }
}

/// A use case's outcome as a runner answers it.
fn done<T: Serialize>(outcome: Outcome<T>) -> Ran {
    serde_json::to_value(outcome?).map_err(|e| Failure::unexpected(e).into())
}

fn id(args: &Map<String, Value>) -> Result<&str, ErrorData> {
    match args.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id),
        _ => Err(ErrorData::invalid_params("`id` (the API key's id) is required", None)),
    }
}

fn query_pairs(args: &Map<String, Value>, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|name| match args.get(*name) {
            Some(Value::String(s)) => Some(((*name).to_owned(), s.clone())),
            Some(Value::Number(n)) => Some(((*name).to_owned(), n.to_string())),
            _ => None,
        })
        .collect()
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
    fn every_schema_offers_exactly_the_arguments_its_route_reads() {
        for tool in all() {
            let schema = tool.input_schema();
            assert_eq!(schema["type"], "object", "{}", tool.name);
            let mut offered: Vec<&str> =
                schema["properties"].as_object().map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
            let mut read = tool.route.arguments();
            offered.sort_unstable();
            read.sort_unstable();
            assert_eq!(offered, read, "{}", tool.name);
            for required in schema["required"].as_array().into_iter().flatten() {
                assert!(read.contains(&required.as_str().unwrap_or("")), "{}: {required}", tool.name);
            }
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
        let call = find("rotate_api_key").unwrap().route.call(&args).unwrap();
        assert_eq!(call.path, "/api-keys/a%2Fb/rotate", "an id cannot change the route");
        assert_eq!(call.body, Some(json!({"grace_period_minutes": 5})));
        let daily: Map<String, Value> = serde_json::from_value(json!({"month": "2026-11", "x": 1})).unwrap();
        assert_eq!(find("get_usage_daily").unwrap().route.call(&daily).unwrap().path, "/usage/daily?month=2026-11");
        let logs: Map<String, Value> = serde_json::from_value(json!({"limit": 5, "action": true})).unwrap();
        assert_eq!(find("list_audit_logs").unwrap().route.call(&logs).unwrap().path, "/audit-logs?limit=5");
        assert!(find("revoke_api_key").unwrap().route.call(&Map::new()).is_err());
        let portal = find("create_portal_link").unwrap().route.call(&Map::new()).unwrap();
        assert_eq!((portal.method, portal.body), ("POST", None));
    }
}
