//! The OpenAPI document is exact (API.md §10): a reviewed snapshot, standard statuses derived for
//! every guarded or JSON route, `loc` items as strings or integers, links, and examples that
//! validate against their own schemas.

use serde_json::{Value, json};

use crate::common::TestApp;

/// The published copy of the reviewed snapshot, for users to import (README links it).
fn published_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// The served document against its reviewed insta snapshot (`tests/api/snapshots/openapi.snap`),
/// and `docs/openapi.json` against the served document. After a deliberate change,
/// `INSTA_UPDATE=always cargo test -p moltflow-server --test api openapi` rewrites both (or accept
/// the snapshot with `cargo insta review`, then run that command for the copy); review the diff
/// like any change to the contract.
#[tokio::test]
async fn the_document_matches_its_reviewed_snapshot() {
    let app = TestApp::spawn().await;
    let served = app.get("/openapi.json", None).await.body;
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    settings.set_sort_maps(true);
    settings.bind(|| insta::assert_json_snapshot!("openapi", served));

    let path = published_path();
    let published: Value =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    if published != served && std::env::var("INSTA_UPDATE").is_ok_and(|v| v == "always") {
        std::fs::write(&path, serde_json::to_string_pretty(&served).unwrap() + "\n").unwrap();
        return;
    }
    assert!(
        published == served,
        "docs/openapi.json (the published copy) differs from the served document: \
         run `INSTA_UPDATE=always cargo test -p moltflow-server --test api openapi` and review the diff"
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
            let errors = validation_errors(&spec, name, example);
            assert!(errors.is_empty(), "the example of {name} does not validate: {errors:?}");
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} examples");
}

/// What is wrong with `value` as an instance of the document's schema `name` (JSON Schema 2020-12,
/// the dialect of OpenAPI 3.1, formats included). The schema is compiled as the whole document
/// with a `$ref` to it at the root, so that its `#/components/schemas/…` references resolve.
fn validation_errors(doc: &Value, name: &str, value: &Value) -> Vec<String> {
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the schema of {name} does not compile: {e}"));
    validator.iter_errors(value).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

#[test]
fn the_validator_refuses_what_the_schemas_refuse() {
    let doc = json!({"components": {"schemas": {
        "Item": {"type": "object", "additionalProperties": false, "required": ["id"],
                 "properties": {"id": {"type": "string", "format": "email"}, "n": {"$ref": "#/components/schemas/N"}}},
        "N": {"type": "integer", "minimum": 1}
    }}});
    assert!(validation_errors(&doc, "Item", &json!({"id": "a@example.com", "n": 2})).is_empty());
    for bad in [
        json!({"n": 2}),
        json!({"id": "a@example.com", "n": 0}),
        json!({"id": "nobody"}),
        json!({"id": "a@example.com", "x": 1}),
    ] {
        assert!(!validation_errors(&doc, "Item", &bad).is_empty(), "{bad} validated");
    }
}
