//! Snapshots of response bodies (insta): the status and the JSON body, with what changes from run
//! to run (ids, times, tokens, secrets) redacted, each after a check of its shape: a redacted time
//! is RFC 3339, a redacted id is not empty, and `null` stays `null` (a snapshot still tells "never
//! used" from "used"). The reviewed snapshots are in `tests/api/snapshots/`; see README, Tests.

use insta::internals::Content;
use insta::{Settings, dynamic_redaction};
use serde_json::json;

use crate::common::Resp;

/// Fields holding ids of rows and requests, and cursors (an id, encoded).
const IDS: &[&str] = &[
    "id",
    "tenant_id",
    "user_id",
    "created_by",
    "invited_by",
    "session_id",
    "api_key_id",
    "request_id",
    "target",
    "next_cursor",
];
/// Fields holding times (RFC 3339).
const TIMES: &[&str] = &[
    "created_at",
    "updated_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
    "accepted_at",
    "granted_at",
    "withdrawn_at",
    "current_period_end",
    "current_period_start",
    "period_start",
    "period_end",
    "resets_at",
    "email_verified_at",
    "previous_expires_at",
    "at",
];
/// Fields holding calendar months and days of the current date (`2026-11`, `2026-11-30`).
const DATES: &[&str] = &["month", "date", "day"];
/// Fields holding secrets or credentials: never the same twice, never worth reading.
const SECRETS: &[&str] = &["access_token", "refresh_token", "raw_key", "key_prefix", "token", "checkout_url", "url"];

fn keep_null_or(placeholder: &'static str, check: fn(&str) -> bool) -> insta::internals::Redaction {
    dynamic_redaction(move |value, path| match &value {
        Content::None | Content::Unit => value,
        Content::Some(inner) if matches!(**inner, Content::None | Content::Unit) => value,
        _ => {
            let text = value.as_str().map(str::to_owned).unwrap_or_else(|| format!("{value:?}"));
            assert!(check(&text), "{path}: {text:?} is not of the shape {placeholder} stands for");
            Content::from(placeholder)
        }
    })
}

fn is_time(s: &str) -> bool {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn settings() -> Settings {
    let mut settings = Settings::clone_current();
    // One directory of snapshots named after the response, whichever module asserts them.
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    settings.set_sort_maps(true);
    for key in IDS {
        settings.add_redaction(&format!(".**.{key}"), keep_null_or("[id]", |s| !s.trim().is_empty()));
    }
    for key in TIMES {
        settings.add_redaction(&format!(".**.{key}"), keep_null_or("[time]", is_time));
    }
    for key in DATES {
        settings.add_redaction(&format!(".**.{key}"), keep_null_or("[date]", is_date));
    }
    for key in SECRETS {
        settings.add_redaction(&format!(".**.{key}"), keep_null_or("[secret]", |s| !s.is_empty()));
    }
    settings
}

/// Asserts that `r` (status and body) matches the reviewed snapshot `name`.
#[track_caller]
pub fn assert_response(name: &str, r: &Resp) {
    let value = json!({"status": r.status, "body": r.body});
    settings().bind(|| insta::assert_json_snapshot!(name, value));
}
