//! Cross-site request forgery: every state-changing form carries a `csrf` field that the server
//! checks in constant time before anything else runs.
//!
//! - Signed in, the token is an HMAC of the session cookie's secret, so it is bound to the session
//!   and never stored; another site can neither read the cookie nor compute the token.
//! - Signed out (sign-in, register, reset, magic link, invitation), the same HMAC is taken of a
//!   random pre-session cookie `mf_csrf` (`__Host-mf_csrf` behind https; double submit, bound
//!   to this browser).
//! - A POST whose `Origin` header names another origin is refused as well, token or not.
//!
//! A missing or wrong token answers `403` with a page ([`PageError::Csrf`]); nothing changes.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use moltflow_core::secret::{constant_time_eq, new_token};
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::dashboard::errors::{PageError, PageResult};
use crate::dashboard::session::{self, Viewer};
use crate::error::ApiError;
use crate::state::AppState;

/// The pre-session cookie of signed-out forms.
pub const PRE_COOKIE: session::CookieName = session::CookieName { plain: "mf_csrf", prefixed: "__Host-mf_csrf" };
/// The form field every state-changing form carries.
pub const FIELD: &str = "csrf";

/// The form token derived from a cookie secret.
pub fn token_for(secret: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"moltflow dashboard csrf v1");
    hex::encode(mac.finalize().into_bytes())
}

fn matches(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|given| constant_time_eq(expected.as_bytes(), given.as_bytes()))
}

/// `false` when the request says it comes from another origin. Browsers send `Origin` on every
/// POST; it must name this host (as the browser reached it, or the configured public URL).
pub fn same_origin(headers: &HeaderMap, state: &AppState) -> bool {
    let Some(origin) = headers.get(ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let Some((_, authority)) = origin.split_once("://") else { return false };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let public =
        state.config.server.public_url.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or(rest));
    host == Some(authority) || public == Some(authority)
}

/// The pre-session token of a signed-out page, and the cookie to set when the browser has none.
pub struct PreSession {
    pub token: String,
    /// `Set-Cookie` for a new pre-session secret; add it to the response when present.
    pub set_cookie: Option<axum::http::HeaderValue>,
}

impl FromRequestParts<AppState> for PreSession {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> PageResult<PreSession> {
        Ok(pre_session(&parts.headers, state))
    }
}

fn pre_session(headers: &HeaderMap, state: &AppState) -> PreSession {
    match session::cookie(headers, PRE_COOKIE.in_force(state)).filter(|v| v.len() == 43) {
        Some(secret) => PreSession { token: token_for(secret), set_cookie: None },
        None => {
            let secret = new_token();
            PreSession {
                token: token_for(&secret),
                set_cookie: Some(session::set_cookie(state, PRE_COOKIE, &secret, None)),
            }
        }
    }
}

/// Reads a urlencoded form body (`csrf` included) once the origin is checked; answers the headers.
async fn read_form(
    parts: Parts,
    body: axum::body::Body,
    state: &AppState,
) -> PageResult<(HeaderMap, Vec<(String, String)>)> {
    if !same_origin(&parts.headers, state) {
        return Err(PageError::Csrf);
    }
    let headers = parts.headers.clone();
    let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(|_| ApiError::bad_request("invalid_body", "The form could not be read"))?;
    Ok((headers, form_urlencoded::parse(&bytes).into_owned().collect()))
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn decode<T: DeserializeOwned>(pairs: &[(String, String)]) -> PageResult<T> {
    let fields: Vec<(&str, &str)> =
        pairs.iter().filter(|(k, _)| k != FIELD).map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    serde_urlencoded::from_str(&encoded)
        .map_err(|e| PageError::Api(ApiError::bad_request("invalid_form", format!("The form is not complete: {e}"))))
}

/// A state-changing form of a signed-in page: the viewer, and the form `T`, read only after the
/// CSRF token and origin were checked. Take it instead of `Viewer` in a POST handler.
pub struct Signed<T> {
    pub viewer: Viewer,
    pub form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Signed<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> PageResult<Signed<T>> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let (_, pairs) = read_form(parts, body, state).await?;
        if !matches(&viewer.csrf, field(&pairs, FIELD)) {
            return Err(PageError::Csrf);
        }
        Ok(Signed { viewer, form: decode(&pairs)? })
    }
}

/// A form of a signed-out page (sign in, register, …): checked against the pre-session cookie.
pub struct Public<T> {
    pub form: T,
    /// The token to render the form again with (when it has errors).
    pub pre: PreSession,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Public<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> PageResult<Public<T>> {
        let (parts, body) = req.into_parts();
        let (headers, pairs) = read_form(parts, body, state).await?;
        let secret =
            session::cookie(&headers, PRE_COOKIE.in_force(state)).filter(|v| v.len() == 43).ok_or(PageError::Csrf)?;
        let pre = PreSession { token: token_for(secret), set_cookie: None };
        if !matches(&pre.token, field(&pairs, FIELD)) {
            return Err(PageError::Csrf);
        }
        Ok(Public { form: decode(&pairs)?, pre })
    }
}
