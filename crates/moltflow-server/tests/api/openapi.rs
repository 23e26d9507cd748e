//! The OpenAPI document is exact (API.md §10): a reviewed snapshot, standard statuses derived for
//! every guarded or JSON route, `loc` items as strings or integers, links, and examples that
//! validate against their own schemas.

use serde_json::{Value, json};

use crate::common::TestApp;

/// The checked-in document. `UPDATE_SNAPSHOTS=1 cargo test -p moltflow-server --test api openapi`
/// rewrites it; review the diff like any change to the contract.
fn snapshot_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[tokio::test]
async fn the_document_matches_its_reviewed_snapshot() {
    let app = TestApp::spawn().await;
    let served = app.get("/openapi.json", None).await.body;
    let rendered = serde_json::to_string_pretty(&served).unwrap() + "\n";
    let path = snapshot_path();
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    let checked_in: Value = serde_json::from_str(&checked_in).unwrap_or(Value::Null);
    assert!(
        checked_in == served,
        "/openapi.json differs from docs/openapi.json: review the change and run \
         `UPDATE_SNAPSHOTS=1 cargo test -p moltflow-server --test api openapi` to accept it"
    );
}

#[tokio::test]
async fn every_guarded_or_json_operation_documents_the_statuses_its_guards_answer() {
    let app = TestApp::spawn().await;
    let spec = app.get("/openapi.json", None).await.body;
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                assert!(
                    response["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured {
                for status in ["401", "403", "429"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
                assert!(responses["429"]["headers"]["Retry-After"].is_object(), "{method} {path} 429 Retry-After");
                checked += 1;
            }
            if op.pointer("/requestBody/content/application~1json").is_some() {
                for status in ["400", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
            }
        }
    }
    assert!(checked > 30, "only {checked} guarded operations found");
}

#[tokio::test]
async fn loc_items_are_strings_or_integers_in_the_document_and_on_the_wire() {
    let app = TestApp::spawn().await;
    let spec = app.get("/openapi.json", None).await.body;
    let items = &spec["components"]["schemas"]["ValidationItem"]["properties"]["loc"]["items"];
    let types: Vec<&str> = items["anyOf"].as_array().unwrap().iter().filter_map(|t| t["type"].as_str()).collect();
    assert_eq!(types, ["string", "integer"]);

    let pair = app.register("loc@example.com").await;
    let token = crate::common::token(&pair, "access_token");
    let event = |id: &str, quantity: Value| json!({"id": id, "metric": "messages", "quantity": quantity});
    let body =
        json!({"events": [event("a", json!(1)), event("b", json!(1)), event("c", json!(1)), event("d", json!(0))]});
    let r = app.post("/usage/events", body, Some(&token)).await;
    r.assert(422, "validation_error");
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "events", 3, "quantity"]));
}

#[tokio::test]
async fn creates_link_to_the_operations_that_take_what_they_created() {
    let app = TestApp::spawn().await;
    let spec = app.get("/openapi.json", None).await.body;
    let links = &spec["paths"]["/api-keys"]["post"]["responses"]["201"]["links"];
    for (name, op) in
        [("GetApiKey", "get_api_key"), ("RotateApiKey", "rotate_api_key"), ("RevokeApiKey", "revoke_api_key")]
    {
        assert_eq!(links[name]["operationId"], op);
        assert_eq!(links[name]["parameters"]["id"], "$response.body#/id");
    }
    let links = &spec["paths"]["/tenant/invitations"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["RevokeInvitation"]["operationId"], "revoke_invitation");
}

#[tokio::test]
async fn every_example_validates_against_its_schema() {
    let app = TestApp::spawn().await;
    let spec = app.get("/openapi.json", None).await.body;
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let mut checked = 0;
    for (name, schema) in schemas {
        if let Some(example) = schema.get("example") {
            let mut errors = Vec::new();
            validate(&spec, schema, example, name, &mut errors);
            assert!(errors.is_empty(), "the example of {name} does not validate: {errors:?}");
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} examples");
}

/// A JSON Schema check for the keywords this document uses (types, properties, required,
/// additionalProperties, items, enum, anyOf/oneOf/allOf, $ref, numeric and length bounds).
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = doc.pointer(r.trim_start_matches('#')).unwrap_or(&Value::Null);
        return validate(doc, target, value, at, errors);
    }
    for key in ["allOf"] {
        for sub in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
            validate(doc, sub, value, at, errors);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(subs) = schema.get(key).and_then(Value::as_array) {
            let ok = subs.iter().any(|sub| {
                let mut e = Vec::new();
                validate(doc, sub, value, at, &mut e);
                e.is_empty()
            });
            if !ok {
                errors.push(format!("{at}: matches none of {key}"));
            }
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let matches = |t: &str| match t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        };
        if !types.iter().any(|t| matches(t)) {
            errors.push(format!("{at}: {value} is not {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} not in enum"));
    }
    if let Some(n) = value.as_f64() {
        if schema.get("minimum").and_then(Value::as_f64).is_some_and(|m| n < m) {
            errors.push(format!("{at}: {n} below minimum"));
        }
        if schema.get("maximum").and_then(Value::as_f64).is_some_and(|m| n > m) {
            errors.push(format!("{at}: {n} above maximum"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema.get("minLength").and_then(Value::as_u64).is_some_and(|m| len < m) {
            errors.push(format!("{at}: shorter than minLength"));
        }
        if schema.get("maxLength").and_then(Value::as_u64).is_some_and(|m| len > m) {
            errors.push(format!("{at}: longer than maxLength"));
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if schema.get("minItems").and_then(Value::as_u64).is_some_and(|m| len < m) {
            errors.push(format!("{at}: fewer than minItems"));
        }
        if schema.get("maxItems").and_then(Value::as_u64).is_some_and(|m| len > m) {
            errors.push(format!("{at}: more than maxItems"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(doc, item_schema, item, &format!("{at}[{i}]"), errors);
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                errors.push(format!("{at}: missing required {name}"));
            }
        }
        for (key, field) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(field_schema) => validate(doc, field_schema, field, &format!("{at}.{key}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: unknown field {key}"));
                }
                None => {}
            }
        }
    }
}
