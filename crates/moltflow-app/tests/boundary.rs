//! The use cases stay free of transports (docs/ARCHITECTURE.md): this crate names no HTTP server,
//! HTML or MCP crate among its dependencies, so no file in it can reach for axum's types, an HTTP
//! status, the API's error type or a page. Cargo enforces the boundary; this test keeps the
//! manifest from growing one back.

/// Crates that belong to the ways in (`moltflow-server`), never to the use cases.
const TRANSPORTS: &[&str] = &[
    "axum",
    "axum-extra",
    "hyper",
    "hyper-util",
    "http",
    "http-body",
    "tower",
    "tower-http",
    "maud",
    "rmcp",
    "utoipa",
    "utoipa-axum",
    "moltflow-server",
];

#[test]
fn the_manifest_names_no_transport_crate() {
    let manifest: toml::Table =
        toml::from_str(include_str!("../Cargo.toml")).expect("crates/moltflow-app/Cargo.toml parses");
    let mut named = Vec::new();
    for section in ["dependencies", "build-dependencies"] {
        if let Some(deps) = manifest.get(section).and_then(toml::Value::as_table) {
            named.extend(deps.keys().filter(|name| TRANSPORTS.contains(&name.as_str())).cloned());
        }
    }
    assert!(named.is_empty(), "moltflow-app depends on transport crates: {named:?}");
    assert!(manifest["dependencies"].as_table().is_some_and(|d| d.contains_key("moltflow-store")));
}
