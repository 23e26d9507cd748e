//! The dashboard session: an `HttpOnly` cookie holding a random token whose SHA-256 names a row
//! of `web_sessions`, which names a row of `sessions` (the API's own). Signing in through a page
//! opens the same kind of session as `POST /auth/login`; revoking that session (API logout, "sign
//! out everywhere", a password reset) ends the cookie too, and signing out here ends the session
//! for the API. Timeouts are measured with the app's clock (tests move it).

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use moltflow_core::clock::{HOUR_MS, MINUTE_MS};
use moltflow_core::secret::{new_token, sha256_hex};
use moltflow_core::{Role, Scope};
use moltflow_store::web_sessions::{
    WebSessionRow, delete_web_session, find_web_session, insert_web_session, touch_web_session,
};
use moltflow_types::TokenPair;

use crate::dashboard::csrf;
use crate::dashboard::errors::{PageError, PageResult};
use crate::error::ApiError;
use crate::state::AppState;
use moltflow_app::auth::rate_limit::PrincipalRates as _;
use moltflow_app::services::origin::{Channel, Origin};
use moltflow_app::services::principal::{Credential, Principal};
use moltflow_app::services::sessions::REFRESH_TOKEN_LIFETIME_MS;

pub const COOKIE_NAME: CookieName = CookieName { plain: "mf_session", prefixed: "__Host-mf_session" };
/// A session unused this long ends (a shared computer left signed in).
pub const IDLE_TIMEOUT_MS: i64 = 12 * HOUR_MS;
/// A session ends this long after sign-in whatever its use: the lifetime of an API refresh token.
pub const ABSOLUTE_TIMEOUT_MS: i64 = REFRESH_TOKEN_LIFETIME_MS;
/// Activity is written at most this often (the idle timeout is that much less precise).
const TOUCH_EVERY_MS: i64 = 5 * MINUTE_MS;

/// Who is signed in to the dashboard, as the use cases see them (`principal`), with the CSRF
/// token of their forms.
pub struct Viewer {
    pub principal: Principal,
    /// Put in every state-changing form as the `csrf` field (see `forms::csrf_field`).
    pub csrf: String,
    token_hash: String,
}

impl Viewer {
    /// Whether the viewer's role allows `scope` (the API's role → scope sets): pages hide what
    /// would answer 403.
    pub fn may(&self, scope: Scope) -> bool {
        self.principal.scopes.contains(scope)
    }

    pub fn user(&self) -> &moltflow_store::accounts::UserRow {
        &self.principal.user
    }

    pub fn session_id(&self) -> &str {
        match &self.principal.credential {
            Credential::Session { session_id, .. } => session_id,
            Credential::ApiKey { key_id } => key_id,
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> PageResult<Viewer> {
        match load(&parts.headers, state).await? {
            Some(viewer) => Ok(viewer),
            None => {
                // Back to the page after signing in; a form's target only answers POST, so a
                // form sent after the session ended returns to the overview instead.
                let next = match parts.method {
                    axum::http::Method::GET => parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
                    _ => "/".to_owned(),
                };
                Err(PageError::SignIn { next })
            }
        }
    }
}

/// The viewer when signed in, `None` otherwise (pages that serve both).
pub struct MaybeViewer(pub Option<Viewer>);

impl FromRequestParts<AppState> for MaybeViewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> PageResult<MaybeViewer> {
        Ok(MaybeViewer(load(&parts.headers, state).await?))
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Reads the session cookie: `None` when absent, unknown, timed out or its session revoked.
pub async fn load(headers: &HeaderMap, state: &AppState) -> PageResult<Option<Viewer>> {
    let Some(raw) = cookie(headers, COOKIE_NAME.in_force(state)).filter(|raw| raw.len() == 43) else {
        return Ok(None);
    };
    let token_hash = sha256_hex(raw);
    let mut conn = state.store.conn().await?;
    let Some(row) = find_web_session(&mut conn, &token_hash).await? else {
        return Ok(None);
    };
    let now = state.clock.now_ms();
    if now - row.created_at >= ABSOLUTE_TIMEOUT_MS || now - row.last_seen_at >= IDLE_TIMEOUT_MS {
        drop(conn);
        expire(state, &row).await?;
        return Ok(None);
    }
    let session = state.auth_cache.session(&state.store, &row.session_id, now).await.map_err(|e| {
        tracing::error!(error = %e, "loading a dashboard session");
        ApiError::unavailable("Sessions are temporarily unavailable").with_retry_after(1)
    })?;
    let member = match (&session.member, session.revoked) {
        (Some(member), false) => member,
        _ => {
            // Revoked elsewhere (API logout, a reset, another device's "everywhere"): the cookie
            // row has nothing left to name.
            delete_web_session(&mut conn, &token_hash).await?;
            return Ok(None);
        }
    };
    // A page view counts against the same per-principal rate as an API call, keyed by the same
    // user id: one budget per person whichever way in, so the dashboard is no unlimited back door
    // to the use cases (and the database) behind the API's limits. Checked before the write below.
    match state.rate_limits.principal.check(&member.user.id, &member.plan_id, now).await {
        None => {}
        Some(Ok(info)) => crate::request_context::record_rate(info),
        Some(Err((info, wait))) => {
            crate::request_context::record_rate(info);
            return Err(ApiError::too_many(
                "rate_limited",
                format!(
                    "You made more than {} requests in a minute, the limit of your plan (pages and API calls \
                     together), so this page was not loaded",
                    info.limit
                ),
                wait,
            )
            .into());
        }
    }
    if now - row.last_seen_at >= TOUCH_EVERY_MS {
        touch_web_session(&mut conn, &token_hash, now).await?;
    }
    let role: Role = member.user.role;
    let principal = Principal {
        scopes: role.granted(),
        role,
        user: member.user.clone(),
        plan_id: member.plan_id.clone(),
        credential: Credential::Session {
            session_id: row.session_id.clone(),
            method: session.method.clone(),
            created_at: session.created_at,
        },
    };
    Ok(Some(Viewer { principal, csrf: csrf::token_for(raw), token_hash }))
}

/// A timed-out cookie ends its session too: nobody holds that session's API tokens but the
/// dashboard, so it would only linger.
async fn expire(state: &AppState, row: &WebSessionRow) -> PageResult<()> {
    let mut tx = state.store.begin().await?;
    delete_web_session(&mut tx, &row.token_hash).await?;
    let revoked = moltflow_store::sessions::revoke_session(&mut tx, &row.session_id, state.clock.now_ms()).await?;
    tx.commit().await?;
    if revoked {
        state.auth_cache.forget_sessions(std::slice::from_ref(&row.session_id)).await;
    }
    Ok(())
}

/// Opens the dashboard session for the session a use case just signed in (`pair`): answers the
/// `Set-Cookie` header. The pair's refresh token is dropped unread: the cookie stands in for it.
pub async fn start(state: &AppState, pair: &TokenPair) -> PageResult<HeaderValue> {
    let now = state.clock.now_ms();
    let claims = match state.auth_cache.verified_token(&pair.access_token, now) {
        Some(claims) => claims.sid.clone(),
        None => state.jwt.verify(&pair.access_token, now).map_err(|_| ApiError::internal())?.sid,
    };
    let raw = new_token();
    let mut conn = state.store.conn().await?;
    insert_web_session(
        &mut conn,
        &WebSessionRow { token_hash: sha256_hex(&raw), session_id: claims, created_at: now, last_seen_at: now },
    )
    .await?;
    Ok(set_cookie(state, COOKIE_NAME, &raw, Some(ABSOLUTE_TIMEOUT_MS / 1000)))
}

/// Forgets the viewer's cookie row (its session is revoked by the use case that signs out).
pub async fn forget(state: &AppState, viewer: &Viewer) -> PageResult<()> {
    let mut conn = state.store.conn().await?;
    delete_web_session(&mut conn, &viewer.token_hash).await?;
    Ok(())
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear(state: &AppState) -> HeaderValue {
    set_cookie(state, COOKIE_NAME, "", Some(0))
}

/// The name of a dashboard cookie, which depends on the public URL's scheme.
///
/// Behind https it takes the `__Host-` prefix: browsers then accept it only with `Secure`,
/// `Path=/` and no `Domain`, set by this very host over https. So a sibling subdomain or a
/// plain-http page on the same host (a network attacker who answers `http://` for it) cannot
/// plant a cookie that this service would read (session fixation, a CSRF secret of their
/// choosing). Over http (local development) browsers refuse the prefix, so the plain name stays.
#[derive(Clone, Copy, Debug)]
pub struct CookieName {
    pub plain: &'static str,
    /// `plain` with `__Host-` in front.
    pub prefixed: &'static str,
}

impl CookieName {
    /// The one name read and written here: the unprefixed name is not read behind https, or
    /// anyone able to set it would get round the prefix.
    pub fn in_force(self, state: &AppState) -> &'static str {
        if is_https(state) { self.prefixed } else { self.plain }
    }
}

fn is_https(state: &AppState) -> bool {
    state.config.server.public_url.starts_with("https://")
}

/// A cookie of the dashboard: `HttpOnly; SameSite=Lax; Path=/`, no `Domain`, and behind an
/// https public URL `Secure` with the `__Host-` name. `max_age` in seconds (`None`: until the
/// browser closes).
pub fn set_cookie(state: &AppState, name: CookieName, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if is_https(state) { "; Secure" } else { "" };
    let name = name.in_force(state);
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/{age}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The header name of [`set_cookie`]'s value.
pub const SET: axum::http::HeaderName = SET_COOKIE;

/// Where a dashboard request comes from, for the use cases (audit entries, per-address limits):
/// the API's reading of the client address and user agent, marked as the dashboard's.
pub struct Client(pub Origin);

impl FromRequestParts<AppState> for Client {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> PageResult<Client> {
        let mut origin = Origin::from_request_parts(parts, state).await?;
        origin.channel = Channel::Dashboard;
        Ok(Client(origin))
    }
}
