//! The request id: taken from `X-Request-Id` when the client sent a sane one, otherwise new; kept
//! in the request's context (`request_context`) so that error bodies and logs name it without
//! threading it everywhere.

use std::fmt;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// A request's id, kept as the header value it is answered in: taking the client's costs a
/// reference count, and a fresh one is formatted without `fmt`.
#[derive(Clone, Debug)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The value of the `X-Request-Id` response header.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }

    pub fn as_str(&self) -> &str {
        // Only visible ASCII gets in (see `pick`), so this never falls back.
        self.0.to_str().unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name made once: a `&str` would be parsed into a newly allocated name on every insert.
pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The client's id if it is 1–128 visible ASCII characters, else a fresh UUID.
pub fn pick(headers: &HeaderMap) -> RequestId {
    match headers.get(&HEADER) {
        Some(sent) if is_sane(sent.as_bytes()) => RequestId(sent.clone()),
        _ => fresh(),
    }
}

fn is_sane(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 128 && id.iter().all(u8::is_ascii_graphic)
}

fn fresh() -> RequestId {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    RequestId(HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(id: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(&HEADER, HeaderValue::from_bytes(id).unwrap());
        headers
    }

    #[test]
    fn a_sane_client_id_is_kept_and_anything_else_gets_a_uuid() {
        assert_eq!(pick(&with(b"req-42")).as_str(), "req-42");
        let long = [b'a'; 129];
        for bad in [&b"has space"[..], &long[..], &b"caf\xc3\xa9"[..]] {
            let id = pick(&with(bad));
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok(), "{:?} gave {id}", String::from_utf8_lossy(bad));
        }
        let id = pick(&HeaderMap::new());
        assert_eq!(id.as_str().len(), 36);
        assert_eq!(id.header_value().to_str().unwrap(), id.as_str());
    }
}
