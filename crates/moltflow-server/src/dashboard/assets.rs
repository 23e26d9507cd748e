//! The stylesheet and the script, compiled into the binary and served at names that carry the
//! first 10 hex digits of their SHA-256: a new build gets new names, so browsers may keep each
//! file for a year (`immutable`).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moltflow_core::secret::sha256_hex;

const STYLE: &str = include_str!("../../assets/style.css");
const SCRIPT: &str = include_str!("../../assets/app.js");

fn versioned(stem: &str, ext: &str, content: &str) -> String {
    format!("/assets/{stem}.{}.{ext}", &sha256_hex(content)[..10])
}

static STYLE_PATH: LazyLock<String> = LazyLock::new(|| versioned("style", "css", STYLE));
static SCRIPT_PATH: LazyLock<String> = LazyLock::new(|| versioned("app", "js", SCRIPT));

pub fn style_path() -> &'static str {
    &STYLE_PATH
}

pub fn script_path() -> &'static str {
    &SCRIPT_PATH
}

/// `GET /assets/{name}`: only the current names answer; an old or unknown name is `404`.
pub async fn serve(Path(name): Path<String>) -> Response {
    let path = format!("/assets/{name}");
    let (content, kind) = if path == *STYLE_PATH {
        (STYLE, "text/css; charset=utf-8")
    } else if path == *SCRIPT_PATH {
        (SCRIPT, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
        ],
        content,
    )
        .into_response()
}
