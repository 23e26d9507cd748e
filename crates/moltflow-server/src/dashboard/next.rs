//! Where a page may send a browser that asked to go somewhere (`next=` after signing in, the page
//! to return to after the verification banner's button): a path of this site, never another
//! origin (API.md §3, "Redirects after sign-in").
//!
//! A target is judged on what it could become, not on how it is spelled: it is percent-decoded
//! until decoding changes nothing, with control characters and white space removed after each
//! pass, because a browser drops tabs and newlines inside a URL (`/%09/evil` is `//evil` once the
//! form decoder has turned `%09` into a tab) and a proxy or framework downstream may decode once
//! more (`/%252f%252fevil`). Decoding to a fixed point answers for any number of such layers at
//! once; refusing only `%2f` and `%5c` after one decode would leave every other escape that
//! matters (`%09`, `%2e`, `%0a`…) to a list, at every depth.

use percent_encoding::percent_decode_str;
use url::{Position, Url};

/// Longer targets are refused rather than decoded: each pass is linear and a value of nested
/// escapes (`%252525…`) takes one pass per layer. Pages of this site are far shorter.
const MAX_LEN: usize = 2048;

/// Characters that compatibility normalisation (NFKC) turns into `/` or `\`. A browser keeps them
/// as they are in a path, so `/／evil` is harmless there, but a proxy or mail client that
/// normalises would read `//evil`; no page of this site has one in its address.
const LOOKALIKE_SLASHES: [char; 3] = ['\u{FF0F}', '\u{FF3C}', '\u{FE68}'];

/// The base a target is resolved against: only its origin matters, and it is never shown.
const SELF: &str = "http://self.invalid/";

/// A path on this site to go to: `next` when it is one, `/` otherwise. The answer is what goes
/// into the `Location` header or a hidden field: ASCII, percent-encoded, without control
/// characters or white space.
pub fn safe_next(next: Option<&str>) -> String {
    next.and_then(local_path).unwrap_or_else(|| "/".to_owned())
}

/// `safe_next(next)` with `key=value` added to its query (before any fragment).
pub fn safe_next_with(next: Option<&str>, key: &str, value: &str) -> String {
    let path = safe_next(next);
    match Url::parse(SELF).and_then(|base| base.join(&path)) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair(key, value);
            url[Position::BeforePath..].to_owned()
        }
        Err(_) => format!("/?{key}={}", super::errors::encode(value)),
    }
}

fn local_path(raw: &str) -> Option<String> {
    if raw.len() > MAX_LEN {
        return None;
    }
    let cleaned = strip(raw);
    if !judged_local(&cleaned) {
        return None;
    }
    // What is sent is the cleaned value as written (an escaped `%26` in a query stays one), in
    // the URL parser's serialisation; dot segments collapse there (`/..//evil` is `//evil`), so
    // the result is judged again.
    let sent = resolve(&cleaned)?;
    judged_local(&sent).then_some(sent)
}

/// A local path as written, and still one once fully decoded.
fn judged_local(path: &str) -> bool {
    is_local(path) && fully_decoded(path).is_some_and(|decoded| is_local(&decoded))
}

fn strip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() && !c.is_whitespace()).collect()
}

/// Percent-decoded and stripped until nothing changes; `None` when a pass yields bytes that are
/// not UTF-8 (no page of this site has such an address). Every pass that changes the text
/// shortens it, so the loop ends.
fn fully_decoded(s: &str) -> Option<String> {
    let mut current = s.to_owned();
    loop {
        let next = strip(&percent_decode_str(&current).decode_utf8().ok()?);
        if next == current {
            return Some(current);
        }
        current = next;
    }
}

/// An absolute path that stays on this origin, however it is resolved.
fn is_local(path: &str) -> bool {
    has_local_shape(path) && resolve(path).is_some_and(|resolved| has_local_shape(&resolved))
}

/// One `/` first, and no backslash anywhere (browsers read `\` as `/` in http URLs).
fn has_local_shape(path: &str) -> bool {
    path.starts_with('/') && !path[1..].starts_with('/') && !path.contains('\\') && !path.contains(LOOKALIKE_SLASHES)
}

/// `path` resolved as a browser would against this site: its path, query and fragment, when the
/// result is still on this site.
fn resolve(path: &str) -> Option<String> {
    let base = Url::parse(SELF).ok()?;
    let url = base.join(path).ok()?;
    (url.origin() == base.origin()).then(|| url[Position::BeforePath..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every known way of leaving the site (as the value arrives, after the form decoder).
    #[test]
    fn targets_that_could_leave_the_site_go_to_the_overview() {
        let refused = [
            "//evil.example",
            "//evil.example/keys",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "%09/evil.example",
            "/%09/evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example",
            " //evil.example",
            "/\u{0}/evil.example",
            "/%0a/evil.example",
            "/%0d/evil.example",
            "/%0d%0a/evil.example",
            "%2f%2fevil.example",
            "/%2fevil.example",
            "/%2Fevil.example",
            "/%5cevil.example",
            "/%5Cevil.example",
            "/%252fevil.example",
            "/%25252f%25252fevil.example",
            "/%2509/evil.example",
            "/..//evil.example",
            "/%2e%2e//evil.example",
            "/./%2fevil.example",
            "//user@evil.example",
            "//user:pass@evil.example/",
            "@evil.example",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "%0ajavascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "http://evil.example",
            "HTTPS://evil.example/keys",
            "https:evil.example",
            "http:/evil.example",
            "ftp://evil.example",
            "http://127.0.0.1/keys",
            "evil.example",
            "keys",
            "",
            " ",
            "\u{FF0F}\u{FF0F}evil.example",
            "/\u{FF0F}evil.example",
            "/\u{FF3C}evil.example",
            "/%EF%BC%8Fevil.example",
            "/\u{FE68}evil.example",
            "/%ff/evil",
            &"/a".repeat(MAX_LEN),
        ];
        for next in refused {
            assert_eq!(safe_next(Some(next)), "/", "{next:?} must not be followed");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn paths_of_this_site_are_kept() {
        let kept = [
            ("/", "/"),
            ("/members", "/members"),
            ("/keys?page=2", "/keys?page=2"),
            ("/usage#x", "/usage#x"),
            ("/usage/daily?month=2026-11&session=s1", "/usage/daily?month=2026-11&session=s1"),
            ("/audit?action=api_key.created&cursor=abc%3D", "/audit?action=api_key.created&cursor=abc%3D"),
            // An `@` in a path names no host: it is a path of this site.
            ("/@evil.example", "/@evil.example"),
            // A colon after the first `/` is part of the path, not a scheme.
            ("/javascript:alert(1)", "/javascript:alert(1)"),
            // What is sent is clean: no white space, non-ASCII escaped, dot segments resolved.
            ("/keys?q=a b", "/keys?q=ab"),
            ("/keys\t", "/keys"),
            ("/membres?é=1", "/membres?%C3%A9=1"),
            ("/a/../keys", "/keys"),
            ("/a%2fb", "/a%2fb"),
        ];
        for (next, sent) in kept {
            assert_eq!(safe_next(Some(next)), sent, "{next:?}");
        }
    }

    #[test]
    fn a_flash_is_added_to_the_query_before_the_fragment() {
        assert_eq!(safe_next_with(Some("/keys"), "flash", "sent"), "/keys?flash=sent");
        assert_eq!(safe_next_with(Some("/keys?page=2#top"), "flash", "sent"), "/keys?page=2&flash=sent#top");
        assert_eq!(safe_next_with(Some("/%09/evil.example"), "flash", "sent"), "/?flash=sent");
    }
}
