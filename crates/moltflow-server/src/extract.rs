//! Extractors that answer bad input the contract's way: `400` for malformed JSON, a wrong content
//! type or an oversized body; `422` with a located item for a body of the wrong shape.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;
use moltflow_app::services::failure::{Failure, FieldPath, Issue, Outcome, Segment};
pub use moltflow_app::services::origin::{Channel, Origin};

/// A JSON request body; an empty body is `422 missing`.
pub struct JsonBody<T>(pub T);

/// A JSON request body that may be absent: no body or `null` reads as `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_json_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid(&["body"], "Field required", "missing"));
        }
        parse(&bytes).map(JsonBody)
    }
}

impl<T: DeserializeOwned + Default + Send> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_json_bytes(req, state).await?;
        // Only a body that is not there is absent; white space alone is malformed JSON.
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse::<Option<T>>(&bytes).map(|body| OptionalJsonBody(body.unwrap_or_default()))
    }
}

/// The body as bytes, for a route that must see them exactly as sent (a signed webhook); a body
/// too large or too slow is answered as on every other route.
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        read_bytes(req, state).await.map(RawBody)
    }
}

async fn read_json_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = read_bytes(req, state).await?;
    if !bytes.is_empty() && !content_type.as_deref().is_some_and(is_json_content_type) {
        return Err(ApiError::bad_request(
            "invalid_content_type",
            "Expected a JSON body with Content-Type: application/json",
        ));
    }
    Ok(bytes)
}

/// `400 body_too_large` over the route's limit, `408 request_timeout` past the body deadline.
async fn read_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::bad_request("body_too_large", "Request body is too large")
        } else if crate::http_server::is_body_timeout(&rejection) {
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "The request body did not arrive in time")
        } else {
            ApiError::bad_request("invalid_body", "Request body could not be read")
        }
    })
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A JSON document as `T`, answering bad input as a JSON body would be (`400`/`422` located).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let inner = err.inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::bad_request("malformed_json", format!("Malformed JSON: {inner}"));
        }
        // Shape errors stop at the first field; the document may still be broken further on.
        if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            return ApiError::bad_request("malformed_json", format!("Malformed JSON: {syntax}"));
        }
        ApiError::from(Failure::Invalid(vec![shape_issue(&err)]))
    })?;
    de.end().map_err(|e| ApiError::bad_request("malformed_json", format!("Malformed JSON: {e}")))?;
    Ok(value)
}

/// Where and why a JSON document of the right syntax does not fit the type it was read as: the
/// issue a route answers for its body, and MCP for a tool's arguments (read from a `Value`).
pub fn shape_issue(err: &serde_path_to_error::Error<serde_json::Error>) -> Issue {
    use serde_path_to_error::Segment as At;
    let mut path: Vec<Segment> = err
        .path()
        .iter()
        .filter_map(|segment| match segment {
            At::Seq { index } => Some(Segment::Index(*index)),
            At::Map { key } | At::Enum { variant: key } => Some(Segment::Field(key.clone())),
            At::Unknown => None,
        })
        .collect();
    let message = err.inner().to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
    let (kind, field) = classify(&message);
    if let Some(field) = field.map(Segment::Field)
        && path.last() != Some(&field)
    {
        path.push(field);
    }
    Issue { field: FieldPath(path), message: humanize(&message, kind), kind }
}

/// Maps a serde message to a pydantic-style error type, and the field it names if it is missing
/// or unknown (serde reports those at the parent's path).
fn classify(message: &str) -> (&'static str, Option<String>) {
    let quoted = || message.split('`').nth(1).map(str::to_owned);
    if message.starts_with("missing field") {
        ("missing", quoted())
    } else if message.starts_with("unknown field") {
        ("extra_forbidden", quoted())
    } else if message.contains("expected a string") {
        ("string_type", None)
    } else if message.contains("expected a boolean") {
        ("bool_type", None)
    } else if message.contains("expected i") || message.contains("expected u") || message.contains("integer") {
        ("int_type", None)
    } else if message.contains("expected a sequence") {
        ("list_type", None)
    } else if message.contains("expected struct") || message.contains("expected a map") {
        ("dict_type", None)
    } else {
        ("value_error", None)
    }
}

fn humanize(message: &str, kind: &str) -> String {
    match kind {
        "missing" => "Field required".to_owned(),
        "extra_forbidden" => "Extra inputs are not permitted".to_owned(),
        "string_type" => "Input should be a valid string".to_owned(),
        "bool_type" => "Input should be a valid boolean".to_owned(),
        "int_type" => "Input should be a valid integer".to_owned(),
        "list_type" => "Input should be a valid list".to_owned(),
        "dict_type" => "Input should be a valid object".to_owned(),
        _ => message.to_owned(),
    }
}

/// Who is on the other end (the client IP, from `X-Forwarded-For` only behind a trusted proxy,
/// and its user agent), on the API's channel: another way in says its own (`/mcp` does).
impl FromRequestParts<AppState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = request_client_ip(parts, state);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(512).collect());
        Ok(Origin { ip, user_agent, channel: Channel::Api })
    }
}

/// The client IP of a request: the socket peer, or behind a trusted proxy the address it forwarded.
pub fn request_client_ip(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    let peer = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => *peer,
        None => crate::http_server::connection_peer()?,
    }
    .ip();
    Some(client_ip(peer, parts, &state.config.server.trusted_proxies))
}

/// Walks `X-Forwarded-For` from the right while the hop is a trusted proxy; the first untrusted
/// address is the client.
///
/// A hop that cannot be read (`unknown`, an obfuscated name, a header that is not text) ends the
/// walk at the last trusted address, the proxy that forwarded that hop: everything left of it
/// was written by whoever connected to that proxy, so skipping the hop would let a client name
/// its own address (and leave every per-IP limit and audit entry to it). Counting everyone
/// behind that proxy as one address fails closed instead.
fn client_ip(peer: IpAddr, parts: &Parts, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<Option<IpAddr>> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(text) => text.split(',').map(forwarded_hop).collect(),
            Err(_) => vec![None],
        })
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`, with white space around.
fn forwarded_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))
}

/// Query-string parameters, checked one by one so that a bad value answers `422` at
/// `["query", name]`. Unknown parameters are ignored, as FastAPI does.
pub struct QueryParams(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        Ok(QueryParams(form_urlencoded::parse(query.as_bytes()).into_owned().collect()))
    }
}

impl QueryParams {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// An integer within `min..=max`, or `default` when absent (the `422` at `["query", name]`).
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        self.int_within(name, default, min, max).map_err(ApiError::from_query)
    }

    /// [`QueryParams::int`] for a way in that maps the failure itself (MCP's tool arguments).
    pub fn int_within(&self, name: &str, default: i64, min: i64, max: i64) -> Outcome<i64> {
        let Some(raw) = self.get(name) else { return Ok(default) };
        let n: i64 =
            raw.trim().parse().map_err(|_| Failure::invalid(name, "Input should be a valid integer", "int_type"))?;
        if n < min {
            return Err(Failure::invalid(
                name,
                format!("Input should be greater than or equal to {min}"),
                "greater_than_equal",
            ));
        }
        if n > max {
            return Err(Failure::invalid(
                name,
                format!("Input should be less than or equal to {max}"),
                "less_than_equal",
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(peer: &str, trusted: &[&str], forwarded: &[&str]) -> IpAddr {
        let mut request = axum::http::Request::builder();
        for value in forwarded {
            request = request.header("x-forwarded-for", *value);
        }
        let (parts, ()) = request.body(()).expect("a request").into_parts();
        let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|t| t.parse().expect("a CIDR")).collect();
        client_ip(peer.parse().expect("an address"), &parts, &trusted)
    }

    #[test]
    fn every_way_proxies_write_an_address_is_read() {
        for (entry, ip) in [
            ("198.51.100.7", "198.51.100.7"),
            ("198.51.100.7:5678", "198.51.100.7"),
            ("  198.51.100.7:5678\t", "198.51.100.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            (" [2001:db8::7]:443 ", "2001:db8::7"),
        ] {
            assert_eq!(forwarded_hop(entry), Some(ip.parse().unwrap()), "{entry:?}");
        }
        for entry in [
            "unknown",
            "_hidden",
            "_SEVKISEK",
            "",
            "198.51.100.7:",
            "198.51.100.7:99999",
            "[198.51.100.7]",
            "2001:db8::7:443]",
            "fe80::1%eth0",
            "evil.example",
            "\"198.51.100.7\"",
        ] {
            assert_eq!(forwarded_hop(entry), None, "{entry:?}");
        }
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_or_unreadable_hop() {
        let proxy = "10.0.0.1";
        let trusted = ["10.0.0.0/8"];
        let cases: &[(&[&str], &str)] = &[
            (&["203.0.113.9"], "203.0.113.9"),
            (&["203.0.113.9, 10.0.0.2"], "203.0.113.9"),
            // The client's own entry on the left never wins over what the proxy saw.
            (&["1.2.3.4, 203.0.113.9"], "203.0.113.9"),
            (&["1.2.3.4, 203.0.113.9:5678"], "203.0.113.9"),
            (&["1.2.3.4, [2001:db8::9]:5678"], "2001:db8::9"),
            (&["1.2.3.4,   2001:db8::9  "], "2001:db8::9"),
            (&["1.2.3.4", "203.0.113.9:5678"], "203.0.113.9"),
            // Unreadable: the proxy that forwarded it is the client.
            (&["1.2.3.4, unknown"], "10.0.0.1"),
            (&["1.2.3.4, _hidden"], "10.0.0.1"),
            (&["1.2.3.4, "], "10.0.0.1"),
            (&["1.2.3.4, garbage, 10.0.0.2"], "10.0.0.2"),
            (&["1.2.3.4, unknown:80, 10.0.0.2:4000"], "10.0.0.2"),
            // Every hop trusted: the leftmost is the last one known.
            (&["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
            // No header: the proxy itself.
            (&[], "10.0.0.1"),
        ];
        for (forwarded, client) in cases {
            assert_eq!(walk(proxy, &trusted, forwarded), client.parse::<IpAddr>().unwrap(), "{forwarded:?}");
        }
        // A peer that is not a trusted proxy is the client whatever it forwards.
        assert_eq!(walk("203.0.113.50", &trusted, &["1.2.3.4"]), "203.0.113.50".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_forwarded_header_that_is_not_text_ends_the_walk() {
        let mut request = axum::http::Request::builder().header("x-forwarded-for", "1.2.3.4");
        request = request.header("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"\xff1.2.3.4").unwrap());
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip("10.0.0.1".parse().unwrap(), &parts, &trusted), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
