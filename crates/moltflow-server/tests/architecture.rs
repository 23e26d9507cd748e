//! The use cases stay free of HTTP (docs/ARCHITECTURE.md, "Use cases"): no file under
//! `src/services` may reach for axum, `http`, an HTTP status, the API's error type, its extractors
//! or the whole application state. Each way in (API routes, dashboard, MCP) maps a `Failure`
//! itself; a service that imports one of these would tie every way in to HTTP again.

use std::fs;
use std::path::{Path, PathBuf};

/// What a service must not name, as it appears in code (comments are left out).
const FORBIDDEN: &[&str] = &["axum", "http::", "StatusCode", "crate::error", "crate::extract", "crate::state"];

/// Services not yet converted, with the reason; each must still break the rule (so that a
/// conversion shortens this list rather than leaving a stale exemption behind).
const PENDING: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/services") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (line comments and doc comments; the services use no
/// block comments).
fn code_of(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The forbidden names a piece of code uses, including those of grouped imports such as
/// `use crate::{error::ApiError, state::App}`.
fn violations(code: &str) -> Vec<String> {
    let mut found: Vec<String> = FORBIDDEN.iter().filter(|n| code.contains(*n)).map(|n| (*n).to_owned()).collect();
    let flat: String = code.split_whitespace().collect();
    for group in flat.split("crate::{").skip(1) {
        let group = group.split('}').next().unwrap_or("");
        for name in group.split(',').map(|item| item.split("::").next().unwrap_or("")) {
            let path = format!("crate::{name}");
            if FORBIDDEN.contains(&path.as_str()) && !found.contains(&path) {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn services_know_nothing_of_http_or_the_app() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "found only {} files under {}", files.len(), root.display());
    let mut broken = Vec::new();
    let mut stale = Vec::new();
    for path in files {
        let name = path.strip_prefix(&root).expect("under root").to_string_lossy().replace('\\', "/");
        let found = violations(&code_of(&fs::read_to_string(&path).expect("read a service")));
        let pending = PENDING.iter().any(|(p, _)| *p == name);
        match (found.is_empty(), pending) {
            (false, false) => broken.push(format!("src/services/{name} uses {}", found.join(", "))),
            (true, true) => stale.push(format!("src/services/{name} is clean: take it off PENDING")),
            _ => {}
        }
    }
    assert!(broken.is_empty(), "services must not depend on HTTP or the App:\n{}", broken.join("\n"));
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

#[test]
fn the_check_sees_every_form_of_import() {
    for code in [
        "use axum::Json;",
        "use crate::error::ApiError;",
        "use crate::{error::ApiResult, services::failure::Failure};",
        "use crate::{\n    extract::Checks,\n    mail::Mailer,\n};",
        "fn f(app: &crate::state::App) {}",
        "let s = http::StatusCode::OK;",
        "Err(StatusCode::CONFLICT)",
    ] {
        assert!(!violations(code).is_empty(), "missed: {code}");
    }
    for code in ["use crate::services::failure::Failure;", "use crate::{mail::Mailer, auth::cache::AuthCache};"] {
        assert!(violations(code).is_empty(), "false alarm: {code}");
    }
    assert!(violations(&code_of("// the HTTP edge (`crate::error`) maps it\nfn f() {}")).is_empty());
}
