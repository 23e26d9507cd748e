//! The last pass over the OpenAPI document (API.md §10: "the document is exact").
//!
//! The statuses every route shares are answered by layers and extractors, not by the handler:
//! the JSON body extractor (`400 malformed_json` / `invalid_content_type` / `body_too_large`,
//! `422`), the query checks (`422`), the principal extractor (`401`, `403`, `429 rate_limited`
//! from the per-principal limit and the failed-authentication throttle), the database pool
//! (`503`) and the request time limit (`504`). Listing those by hand on every handler drifts, so
//! this pass derives them from what the operation declares: its `security` (how it is guarded),
//! its request body and its parameters. A new route gets them by being declared, not remembered.
//! Handlers still list the statuses that are their own (`404`, `409`, `502`, a route's own `429`).

use serde_json::{Map, Value, json};

/// Routes that never touch the database or run long enough to hit the time limit.
const NO_BACKEND: &[&str] = &["/healthz", "/metrics", "/openapi.json", "/.well-known/jwks.json", "/billing/plans"];

/// How a route is guarded, read from its `security` requirement.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Guard {
    Public,
    /// An access token only: an API key gets `403 user_principal_required`.
    UserOnly,
    /// An access token or an API key with a scope: `403 insufficient_scope`.
    Scoped,
}

fn guard_of(operation: &Value) -> Guard {
    let Some(requirements) = operation.get("security").and_then(Value::as_array) else { return Guard::Public };
    let names: Vec<&str> =
        requirements.iter().filter_map(Value::as_object).flat_map(|r| r.keys().map(String::as_str)).collect();
    if names.contains(&"api_key") {
        Guard::Scoped
    } else if names.is_empty() {
        Guard::Public
    } else {
        Guard::UserOnly
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn validation_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationErrorBody"}}}
    })
}

fn retry_after_header() -> Value {
    json!({
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1}
    })
}

/// A default description for a status a handler listed without one (OpenAPI requires it).
fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "No Content",
        "400" => "Bad request",
        "401" => "Not authenticated",
        "403" => "Forbidden",
        "404" => "Not found (`not_found`), or another tenant's",
        "409" => "Conflict",
        "422" => "Validation error (`validation_error`)",
        "429" => "Too many requests (`rate_limited`); see `Retry-After`",
        "502" => "The billing provider failed (`billing_provider_error`)",
        "503" => "Temporarily unavailable",
        _ => "Response",
    }
}

/// Adds `response` under `status`. When the handler declared that status itself (for its own
/// codes), the standard cases are appended to its description instead.
fn add(responses: &mut Map<String, Value>, status: &str, response: Value) {
    let Some(existing) = responses.get_mut(status).and_then(Value::as_object_mut) else {
        responses.insert(status.to_owned(), response);
        return;
    };
    let standard = response["description"].as_str().unwrap_or_default();
    let own = existing.get("description").and_then(Value::as_str).unwrap_or_default();
    let description = if own.is_empty() || own == default_description(status) || own == "Not authenticated" {
        standard.to_owned()
    } else if own.contains(standard) {
        own.to_owned()
    } else {
        format!("{own}. {standard}")
    };
    existing.insert("description".to_owned(), Value::from(description));
}

fn complete_operation(path: &str, operation: &mut Value) {
    let guard = guard_of(operation);
    let has_json_body = operation.pointer("/requestBody/content/application~1json").is_some();
    let has_query = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p.get("in").and_then(Value::as_str) == Some("query")));
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { return };

    if has_json_body {
        let limit = if path == "/usage/events" { "1 MiB" } else { "64 KiB" };
        add(
            responses,
            "400",
            error_response(&format!(
                "Malformed JSON (`malformed_json`), a content type other than JSON (`invalid_content_type`) \
                 or a body over {limit} (`body_too_large`)"
            )),
        );
        add(
            responses,
            "422",
            validation_response("The body does not have the documented shape or bounds (`validation_error`)"),
        );
        add(
            responses,
            "408",
            error_response(
                "The body did not arrive within `MOLTFLOW_BODY_TIMEOUT_MS` of the headers (`request_timeout`)",
            ),
        );
    }
    if has_query {
        add(responses, "422", validation_response("A query parameter is out of its bounds (`validation_error`)"));
    }
    match guard {
        Guard::Public => {}
        Guard::UserOnly | Guard::Scoped => {
            add(
                responses,
                "401",
                error_response(
                    "Missing, malformed, expired or revoked credentials (`not_authenticated`, `invalid_token`, \
                     `token_expired`, `invalid_api_key`, `api_key_expired`)",
                ),
            );
            let forbidden = if guard == Guard::UserOnly {
                "Called with an API key: this action needs a user's access token (`user_principal_required`)"
            } else {
                "The caller's role or key lacks the scope this route needs (`insufficient_scope`, naming \
                 `required_scope`)"
            };
            add(responses, "403", error_response(forbidden));
            add(
                responses,
                "429",
                error_response(
                    "The caller's per-minute limit, or the failed-authentication throttle of its address \
                     (`rate_limited`); see `Retry-After`",
                ),
            );
        }
    }
    if !NO_BACKEND.contains(&path) {
        add(
            responses,
            "503",
            error_response(
                "The database is unreachable or busy (`database_unavailable`, `unavailable`); retry shortly",
            ),
        );
        add(responses, "504", error_response("The request took longer than 30 s (`timeout`)"));
    }
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else { continue };
        if response.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
            response.insert("description".to_owned(), Value::from(default_description(status)));
        }
        if status == "429" {
            let headers = response.entry("headers").or_insert_with(|| json!({}));
            if let Some(headers) = headers.as_object_mut() {
                headers.entry("Retry-After").or_insert_with(retry_after_header);
            }
        }
    }
}

/// `links` from each create to the operations that take what it created, so that a client (and
/// a stateful fuzzer) can follow a new object to its get, rotate and revoke.
/// A link: its name, the operation it leads to, and the path parameter filled from the `id`.
type Link = (&'static str, &'static str, &'static str);

const LINKS: &[(&str, &str, &str, &[Link])] = &[
    (
        "/api-keys",
        "post",
        "201",
        &[
            ("GetApiKey", "get_api_key", "id"),
            ("RotateApiKey", "rotate_api_key", "id"),
            ("RevokeApiKey", "revoke_api_key", "id"),
        ],
    ),
    (
        "/api-keys/{id}/rotate",
        "post",
        "200",
        &[("GetApiKey", "get_api_key", "id"), ("RevokeApiKey", "revoke_api_key", "id")],
    ),
    ("/tenant/invitations", "post", "201", &[("RevokeInvitation", "revoke_invitation", "id")]),
];

fn add_links(doc: &mut Value) {
    for (path, method, status, links) in LINKS {
        let pointer = format!("/paths/{}/{method}/responses/{status}", path.replace('~', "~0").replace('/', "~1"));
        let Some(response) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) else { continue };
        let map: Map<String, Value> = links
            .iter()
            .map(|(name, operation_id, parameter)| {
                let link = json!({
                    "operationId": operation_id,
                    "parameters": {*parameter: "$response.body#/id"},
                });
                ((*name).to_owned(), link)
            })
            .collect();
        response.insert("links".to_owned(), Value::Object(map));
    }
}

/// A `422` item's `loc` holds field names and list indexes (`["body", "events", 3, "quantity"]`).
fn loc_items_are_strings_or_integers(doc: &mut Value) {
    if let Some(loc) = doc.pointer_mut("/components/schemas/ValidationItem/properties/loc") {
        *loc = json!({
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]},
            "description": "Where the failed check is: `body`, `query` or `path`, then field names and list indexes",
            "example": ["body", "events", 3, "quantity"],
        });
    }
}

/// Closed sets the code already holds, stated from it so they cannot drift: the scope catalogue
/// (`*` too) for a new key's scopes, and the IANA time zone names a profile accepts.
fn closed_sets(doc: &mut Value) {
    let scopes: Vec<&str> =
        std::iter::once("*").chain(moltflow_core::scope::CATALOGUE.iter().map(|s| s.name)).collect();
    if let Some(field) = doc.pointer_mut("/components/schemas/CreateApiKeyRequest/properties/scopes") {
        field["items"] = json!({"type": "string", "enum": scopes});
        field["uniqueItems"] = Value::Bool(true);
    }
    // `inner(pattern)` is not available for a `Vec` field in utoipa, so the item pattern is set here.
    if let Some(field) = doc.pointer_mut("/components/schemas/UpdateTenantSettings/properties/allowed_numbers") {
        field["items"] = json!({"type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$"});
    }
    // Client generators turn enum values into identifiers by dropping punctuation, so names that
    // differ only in it (`Etc/GMT+1`, `Etc/GMT-1`, `GMT0`, `GMT-0`) would collide and stop them:
    // only the first of each is listed. The others are old aliases and are still accepted.
    let mut seen = std::collections::HashSet::new();
    let zones: Vec<&str> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .filter(|name| seen.insert(name.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_uppercase()))
        .collect();
    if let Some(field) = doc.pointer_mut("/components/schemas/UpdateProfileRequest/properties/timezone") {
        field["enum"] = json!(zones.iter().map(|z| Value::from(*z)).chain([Value::Null]).collect::<Vec<_>>());
    }
}

/// A display name (`check_name`): no control characters, at least one that is not white space.
const NAME_PATTERN: &str =
    "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// An id or key of the usage routes: no control characters.
const ID_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$";

/// Text rules the services check, stated where each field is (utoipa takes only literals).
const PATTERNS: &[(&str, &str, &str)] = &[
    ("RegisterRequest", "full_name", NAME_PATTERN),
    ("RegisterRequest", "tenant_name", NAME_PATTERN),
    ("UpdateProfileRequest", "full_name", NAME_PATTERN),
    ("CreateApiKeyRequest", "name", NAME_PATTERN),
    ("AcceptInvitationRequest", "full_name", NAME_PATTERN),
    ("SignupCheckoutRequest", "full_name", NAME_PATTERN),
    ("SignupCheckoutRequest", "tenant_name", NAME_PATTERN),
    ("UsageEvent", "id", ID_PATTERN),
    ("UsageEvent", "session_id", ID_PATTERN),
    ("ConsumeRequest", "session_id", ID_PATTERN),
    ("ConsumeRequest", "idempotency_key", ID_PATTERN),
];

fn text_patterns(doc: &mut Value) {
    for (schema, field, pattern) in PATTERNS {
        if let Some(field) = doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{field}")) {
            field["pattern"] = Value::from(*pattern);
        }
    }
    // Gauges: each a whole number 0..=10^9, at least one present (`null` is refused).
    if let Some(gauges) = doc.pointer_mut("/components/schemas/GaugesRequest") {
        for name in ["sessions", "groups", "labels"] {
            gauges["properties"][name] = json!({"type": "integer", "minimum": 0, "maximum": 1_000_000_000u64});
        }
        gauges["minProperties"] = Value::from(1);
    }
}

/// Completes the document; see the module comment.
pub fn complete(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for operation in item.values_mut() {
                complete_operation(path, operation);
            }
        }
    }
    add_links(doc);
    closed_sets(doc);
    text_patterns(doc);
    loc_items_are_strings_or_integers(doc);
}
